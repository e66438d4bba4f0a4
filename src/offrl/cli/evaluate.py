"""offrl eval."""

import dataclasses
from typing import Literal

import tyro

from offrl.cli.common import _fail


def cmd_eval(argv: list[str]) -> None:
    from offrl.evaluate.policy import evaluate_run

    @dataclasses.dataclass(frozen=True)
    class Args:
        """Evaluate a run directory's checkpoint in its environment."""

        run_dir: tyro.conf.Positional[str]
        """The run directory written by `offrl train` or `offrl online`."""
        step: int | None = None
        """Checkpoint step (default: the latest)."""
        episodes: int = 10
        """Episodes per seed."""
        env_id: str | None = None
        """Override the evaluation environment."""
        seed: int = 10_000
        """Reset seed of the first episode."""
        filter: str | None = None
        """A barrier run (`offrl safety fit`) that filters the policy's actions."""
        filter_mode: Literal["cbf", "qc", "none"] = "cbf"
        """cbf: CBF-QP with the learned dynamics; qc: keep Qc(s, a) >= 0 (model-free)."""
        filter_margin: float | None = None
        """Safety buffer on the barrier (default: the barrier run's, 0 unless set)."""

    args = tyro.cli(Args, args=argv, prog="offrl eval")
    if args.episodes < 1:
        _fail(f"--episodes must be a positive integer, got {args.episodes}")
    if args.step is not None and args.step < 0:
        _fail(f"--step must be a checkpoint step (0 or more), got {args.step}")
    result = evaluate_run(
        args.run_dir,
        args.step,
        args.episodes,
        args.env_id,
        args.seed,
        filter_dir=args.filter,
        filter_mode=args.filter_mode,
        filter_margin=args.filter_margin,
    )
    from rich.console import Console
    from rich.table import Table

    shielded = f", filtered by {args.filter} ({args.filter_mode})" if args.filter else ""
    table = Table(
        title=f"evaluation of {args.run_dir} (step {result['step']}, "
        f"{args.episodes} episodes per seed{shielded})"
    )
    table.add_column("seed")
    table.add_column("return")
    if "normalized_per_seed" in result:
        table.add_column("normalized score")
    if "violation_rate_per_seed" in result:
        table.add_column("violation rate (steps h<0)")
        table.add_column("episodes with a violation")
    for i, seed in enumerate(result["seeds"]):
        row = [str(seed), f"{result['return_per_seed'][i]:.1f}"]
        if "normalized_per_seed" in result:
            row.append(f"{result['normalized_per_seed'][i]:.1f}")
        if "violation_rate_per_seed" in result:
            row.append(f"{100 * result['violation_rate_per_seed'][i]:.2f}%")
            row.append(f"{100 * result['episodes_with_violation_per_seed'][i]:.0f}%")
        table.add_row(*row)
    Console().print(table)
