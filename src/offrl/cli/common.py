"""What every command module of the CLI shares: argument helpers and the one
error line (:func:`_fail`)."""

import pathlib


def _split_commas(argv: list[str]) -> list[str]:
    """Accept ``--seeds 0,1,2`` as well as ``--seeds 0 1 2``."""
    out: list[str] = []
    expand = False
    for arg in argv:
        if expand and "," in arg and not arg.startswith("-"):
            out.extend(part for part in arg.split(",") if part)
        else:
            out.append(arg)
        if arg.startswith("--"):
            expand = arg in ("--seeds", "--algorithms", "--datasets")
    return out


def _group_help(argv: list[str], usage: str) -> None:
    """``offrl GROUP --help``: print the group's usage and exit 0."""
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage)
        raise SystemExit(0)


def _option_value(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` (``--flag V`` or ``--flag=V``), else ``None``."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _plain(doc: str | None) -> str:
    """A module docstring as help text: reST markup (``x``, :func:`a.b`, ``::``) as
    plain text (the help parser stops at a line that starts with a reST role)."""
    import re

    text = (doc or "").strip()
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`").replace("::\n", ":\n")
    return text


def _default_run_dir(algorithm: str, dataset: str) -> str:
    name = pathlib.Path(dataset.removeprefix("suite:")).name or "dataset"
    base = pathlib.Path("runs") / f"{algorithm}-{name}"
    candidate, index = base, 1
    while candidate.exists():
        index += 1
        candidate = pathlib.Path(f"{base}-{index}")
    return str(candidate)


def _message(error: BaseException) -> str:
    """An exception's text on one line (``KeyError`` without its quotes)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split())


def _fail(message) -> None:
    """Print ``error: message`` on stderr and exit with status 2 (bad input)."""
    from rich.console import Console
    from rich.markup import escape

    if isinstance(message, BaseException):
        message = _message(message)
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(message))}")
    raise SystemExit(2)
