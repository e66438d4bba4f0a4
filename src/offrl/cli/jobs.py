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


def cmd_quickstart(argv: list[str]) -> None:
    from offrl.quickstart import QuickstartConfig, run_quickstart

    args = tyro.cli(QuickstartConfig, args=argv, prog="offrl quickstart")
    run_quickstart(args)
