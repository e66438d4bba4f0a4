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
    model_ope: bool = False
    """Also score every checkpoint by model-based OPE (Uni-O4's AM-Q and the model's
    discounted value): fits a dynamics ensemble and a behavior critic to the dataset
    once (minutes on a CPU for locomotion data), then rolls each policy out in it."""
    model_horizon: int = 100
    """Model steps per rollout for --model-ope."""
    model_starts: int = 512
    """Data states the --model-ope rollouts start from."""
    model_max_epochs: int | None = None
    """Cap on the --model-ope dynamics fit's epochs (None: until it stops improving;
    a cap saves minutes on a CPU)."""
    termination: str = "auto"
    """Where --model-ope rollouts end: auto (the task's own rule) or never, hopper,
    walker2d."""
    selector: str = "fqe"
    """The signal that picks the checkpoint to deploy: fqe, or amq / model_value (with
    --model-ope)."""


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


def _model_ope_config(args: _OfflineArgs):
    from offrl.envs.termination import RULES
    from offrl.evaluate.model_ope import ModelOPEConfig
    from offrl.model.ensemble import ModelSpec

    choices = ("fqe", "amq", "model_value")
    if args.selector not in choices:
        _fail(f"--selector must be one of {', '.join(choices)}, got '{args.selector}'")
    if args.selector != "fqe" and not args.model_ope:
        _fail(f"--selector {args.selector} needs --model-ope (its scores come from a model)")
    if not args.model_ope:
        return None
    if args.model_horizon < 1 or args.model_starts < 1:
        _fail(
            f"--model-horizon and --model-starts must be positive integers, got "
            f"{args.model_horizon} and {args.model_starts}"
        )
    if args.model_max_epochs is not None and args.model_max_epochs < 1:
        _fail(f"--model-max-epochs must be a positive integer, got {args.model_max_epochs}")
    if args.termination != "auto" and args.termination not in RULES:
        _fail(f"--termination must be auto or one of {', '.join(RULES)}, got '{args.termination}'")
    return ModelOPEConfig(
        horizon=args.model_horizon,
        starts=args.model_starts,
        discount=args.fqe_discount,
        termination=args.termination,
        seed=args.seed,
        model=ModelSpec(max_epochs=args.model_max_epochs),
    )


def _progress_printer():
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]{message}[/]")


def cmd_select(argv: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from offrl.evaluate.selection import SELECTORS, analyze_run, choose, rank_selectors

    args = tyro.cli(_OfflineArgs, args=argv, prog="offrl select")
    if not args.run_dirs:
        _fail("offrl select needs at least one run directory: offrl select RUN_DIR ...")
    model_config = _model_ope_config(args)
    fqe_config = _fqe_config(args)
    console = Console()
    fitted_models: dict = {}  # runs on the same data share one model
    for run_dir in args.run_dirs:
        analysis = analyze_run(
            run_dir,
            args.dataset,
            fqe_config,
            steps=list(args.steps) if args.steps else None,
            progress=_progress_printer(),
            model_ope=model_config,
            fitted_models=fitted_models,
        )
        table = Table(title=f"offline selection — {run_dir}")
        columns = ["step", "seed", "FQE value", "interval", "dataset Q", "action MSE"]
        signals = analysis["signals"]
        with_model = signals.get("amq") is not None
        if with_model:
            columns += ["AM-Q", "model value"]
        for column in columns:
            table.add_column(column)
        q = signals.get("q_peak")
        for c, step in enumerate(analysis["steps"]):
            for s, seed in enumerate(analysis["seeds"]):
                row = [
                    str(step),
                    str(seed),
                    f"{signals['fqe'][c][s]:.2f}",
                    f"[{analysis['fqe_low'][c][s]:.2f}, {analysis['fqe_high'][c][s]:.2f}]",
                    "–" if q is None else f"{q[c][s]:.3f}",
                    f"{analysis['action_mse'][c][s]:.4f}",
                ]
                if with_model:
                    row += [f"{signals['amq'][c][s]:.2f}", f"{signals['model_value'][c][s]:.2f}"]
                table.add_row(*row)
        console.print(table)
        console.print(
            f"FQE: {analysis['fqe_fits_per_policy']} fit(s) per policy, "
            f"{analysis['fqe_updates_run']} updates each"
            + (" (--thorough for the slower setting)" if not args.thorough else "")
        )
        if with_model:
            info = analysis["model_ope"]
            fit = info["fit"]
            console.print(
                f"model OPE: {info['starts']} start states x {info['horizon']} model steps; "
                f"ensemble fit {fit['model']['epochs']} epochs, held-out MSE "
                f"{fit['model']['holdout_mse_elites'][0]:.4g}, termination "
                f"{fit['termination']}; fits took {fit['seconds']:.0f} s"
            )
        c, s = choose(analysis, args.selector)
        console.print(
            f"[bold]deploy step {analysis['steps'][c]}, seed {analysis['seeds'][s]}[/] "
            f"(highest {SELECTORS[args.selector].removeprefix('highest ')}; behavior value "
            f"{analysis['behavior_value']:.2f})"
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
        model_ope=_model_ope_config(args),
    )
    from rich.console import Console

    Console().print(f"wrote {path}")
