"""The structure the import contract (pyproject.toml, `lint-imports` in CI) cannot
check: no module imports another package's private names."""

import ast
import pathlib

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "src" / "offrl"


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def private_crossings(root: pathlib.Path) -> list[str]:
    """``from offrl.<other package>... import _name`` anywhere under ``root`` (the
    ``offrl`` package directory)."""
    crossings = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        importer = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("offrl"):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and _package(node.module) != _package(importer):
                    crossings.append(f"{importer} imports {node.module}.{alias.name}")
    return crossings


def test_no_private_name_crosses_a_package():
    assert private_crossings(SOURCE) == []


def test_the_check_finds_a_crossing_and_allows_one_inside_a_package(tmp_path):
    root = tmp_path / "offrl"
    (root / "run").mkdir(parents=True)
    (root / "evaluate").mkdir()
    (root / "run" / "a.py").write_text("from offrl.run.b import _inside\n")
    (root / "evaluate" / "c.py").write_text(
        "def f():\n    from offrl.run.train import _secret, public\n"
    )
    assert private_crossings(root) == ["offrl.evaluate.c imports offrl.run.train._secret"]
