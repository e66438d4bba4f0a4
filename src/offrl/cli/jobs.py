"""offrl bench and offrl quickstart."""

import pathlib

import tyro

from offrl.cli.common import _split_commas


def cmd_bench(argv: list[str]) -> None:
    from offrl.bench import BenchConfig, run_bench

    args = tyro.cli(BenchConfig, args=_split_commas(argv), prog="offrl bench")
    result = run_bench(args)  # checks every setting before a cell runs
    print(pathlib.Path(result["files"][0]).read_text())
    print("written:", ", ".join(result["files"]))


def cmd_search(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.search import SearchConfig, run_search

    args = tyro.cli(SearchConfig, args=argv, prog="offrl search")
    console = Console(stderr=True)
    result = run_search(args, progress=lambda message: console.print(f"[dim]{message}[/]"))
    output = pathlib.Path(args.output)
    print((output / "search.md").read_text())
    print("written:", output / "search.md", output / "search.json")
    if result["objective_uses_environment"]:
        print("note: the objective used the environment (a study, not an offline search)")


def cmd_sweep(argv: list[str]) -> None:
    import dataclasses

    from rich.console import Console

    from offrl.sweep import read_sweep, run_sweep, trials

    @dataclasses.dataclass(frozen=True)
    class Sweep:
        """Run a sweep file (TOML or JSON: algorithms, datasets, space, seeds, steps...)
        on Ray Tune; `python -c "import offrl.sweep; help(offrl.sweep)"` shows the format."""

        config: tyro.conf.Positional[str]
        """The sweep file."""
        address: str | None = None
        """A running Ray cluster (ray://HOST:10001 or auto); default: a local Ray."""
        cpus: int | None = None
        """CPUs of the local Ray instance (default: all)."""
        output: str | None = None
        """Overrides the file's output directory."""
        dry_run: bool = False
        """List the trials and stop."""

    args = tyro.cli(Sweep, args=argv, prog="offrl sweep")
    config = read_sweep(args.config, args.output)
    if args.dry_run:
        for trial in trials(config):
            print(f"{trial['label']}  {trial['dataset']}  {trial['run_dir']}")
        return
    console = Console(stderr=True)
    result = run_sweep(
        config, args.address, args.cpus, progress=lambda m: console.print(f"[dim]{m}[/]")
    )
    print(pathlib.Path(result["files"][0]).read_text())
    print("written:", ", ".join(result["files"]))


def cmd_export(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.export import ExportConfig, export_run

    args = tyro.cli(ExportConfig, args=argv, prog="offrl export")
    console = Console(stderr=True)
    records = export_run(args, warn=lambda message: console.print(f"[yellow]{message}[/]"))
    for record in records:
        check = (
            ""
            if record["max_diff"] is None
            else f", largest difference from JAX {record['max_diff']:.1e}"
        )
        print(f"wrote {record['path']} (seed {record['seed']}, {record['bytes']} bytes{check})")


def cmd_quickstart(argv: list[str]) -> None:
    from offrl.quickstart import QuickstartConfig, run_quickstart

    args = tyro.cli(QuickstartConfig, args=argv, prog="offrl quickstart")
    run_quickstart(args)
