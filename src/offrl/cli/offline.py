"""offrl select and offrl report: offline evaluation of run directories."""

import dataclasses

import tyro

from offrl.cli.common import _fail


@dataclasses.dataclass(frozen=True)
class _OfflineArgs:
    """Offline evaluation of run directories: nothing here touches an environment."""

    run_dirs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories written by `offrl train`."""
    dataset: str | None = None
    """The training dataset (default: the one recorded in each run's config.json)."""
    thorough: bool = False
    """FQE's slower setting of earlier versions: 256x256 critics, 10k updates and 5
    bootstrap fits per policy, no early stop (about ten times the default's work)."""
    fqe_updates: int | None = None
    """FQE gradient updates per fit at most (default 6000, stopping earlier once the
    estimates settle; 10000 with --thorough)."""
    bootstrap: int | None = None
    """FQE fits on episode resamples per policy (the interval); 0 = one fit on the full
    data; default: scaled to the candidates (5 for up to 8 policies, 1 from 40)."""
    fqe_discount: float = 0.99
    """Discount of the FQE value."""
    seed: int = 0
    """Seed of the FQE fits and resamples."""
    steps: tuple[int, ...] | None = None
    """Analyze only these checkpoint steps (default: every checkpoint)."""


def _fqe_config(args: _OfflineArgs):
    from offrl.evaluate.fqe import FQEConfig

    if args.fqe_updates is not None and args.fqe_updates < 1:
        _fail(f"--fqe-updates must be a positive integer, got {args.fqe_updates}")
    if args.bootstrap is not None and args.bootstrap < 0:
        _fail(f"--bootstrap must be 0 (one fit) or a positive integer, got {args.bootstrap}")
    if not 0.0 < args.fqe_discount < 1.0:
        _fail(f"--fqe-discount must be in (0, 1), got {args.fqe_discount}")
    overrides = {"discount": args.fqe_discount, "seed": args.seed}
    if args.fqe_updates is not None:
        overrides["updates"] = args.fqe_updates
        overrides["min_updates"] = min(FQEConfig.min_updates, args.fqe_updates)
    if args.bootstrap is not None:
        overrides["bootstrap"] = args.bootstrap
    return FQEConfig.thorough(**overrides) if args.thorough else FQEConfig(**overrides)


def _progress_printer():
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]{message}[/]")


def cmd_select(argv: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from offrl.evaluate.selection import analyze_run, choose, rank_selectors

    args = tyro.cli(_OfflineArgs, args=argv, prog="offrl select")
    if not args.run_dirs:
        _fail("offrl select needs at least one run directory: offrl select RUN_DIR ...")
    console = Console()
    for run_dir in args.run_dirs:
        analysis = analyze_run(
            run_dir,
            args.dataset,
            _fqe_config(args),
            steps=list(args.steps) if args.steps else None,
            progress=_progress_printer(),
        )
        table = Table(title=f"offline selection — {run_dir}")
        for column in ("step", "seed", "FQE value", "interval", "dataset Q", "action MSE"):
            table.add_column(column)
        q = analysis["signals"].get("q_peak")
        for c, step in enumerate(analysis["steps"]):
            for s, seed in enumerate(analysis["seeds"]):
                table.add_row(
                    str(step),
                    str(seed),
                    f"{analysis['signals']['fqe'][c][s]:.2f}",
                    f"[{analysis['fqe_low'][c][s]:.2f}, {analysis['fqe_high'][c][s]:.2f}]",
                    "–" if q is None else f"{q[c][s]:.3f}",
                    f"{analysis['action_mse'][c][s]:.4f}",
                )
        console.print(table)
        console.print(
            f"FQE: {analysis['fqe_fits_per_policy']} fit(s) per policy, "
            f"{analysis['fqe_updates_run']} updates each"
            + (" (--thorough for the slower setting)" if not args.thorough else "")
        )
        c, s = choose(analysis, "fqe")
        console.print(
            f"[bold]deploy step {analysis['steps'][c]}, seed {analysis['seeds'][s]}[/] "
            f"(highest FQE value; behavior value {analysis['behavior_value']:.2f})"
        )
        for seed, verdicts in zip(analysis["seeds"], analysis["diagnostics"], strict=True):
            for v in verdicts:
                console.print(
                    f"seed {seed}: [bold]{v['kind']}[/] — {v['finding']}. {v['recommendation']}"
                )
        ranking = rank_selectors(analysis)
        for name, row in ranking["selectors"].items():
            console.print(
                f"against logged evaluations: {name}: Spearman {row['spearman']:.2f}, "
                f"regret {row['regret']:.1f}"
            )


def cmd_report(argv: list[str]) -> None:
    from offrl.evaluate.report import write_report

    @dataclasses.dataclass(frozen=True)
    class Args(_OfflineArgs):
        """Write a self-contained HTML report of run directories (offline estimates,
        diagnostics, learning curves, dataset summary)."""

        output: str = "report.html"
        """The HTML file to write."""

    args = tyro.cli(Args, args=argv, prog="offrl report")
    if not args.run_dirs:
        _fail("offrl report needs at least one run directory: offrl report RUN_DIR ...")
    path = write_report(
        list(args.run_dirs),
        args.output,
        _fqe_config(args),
        args.dataset,
        steps=list(args.steps) if args.steps else None,
        progress=_progress_printer(),
    )
    from rich.console import Console

    Console().print(f"wrote {path}")
