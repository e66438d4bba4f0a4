"""offrl train and offrl safety fit (a barrier is an offline run of vocbf)."""

import dataclasses
import pathlib
from typing import Annotated

import tyro

from offrl.cli.common import (
    _default_run_dir,
    _fail,
    _group_help,
    _option_value,
    _plain,
    _split_commas,
)
from offrl.core import registry


def cmd_train(argv: list[str]) -> None:
    from offrl.run.rundir import parse_run_config
    from offrl.run.train import TrainConfig, train

    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: offrl train ALGO --dataset DATASET [options]   (offrl train ALGO --help "
            f"lists the options)\nALGO: {', '.join(registry.OFFLINE_ALGORITHMS)}"
        )
        raise SystemExit(0)
    if not argv or argv[0].startswith("-"):
        _fail(
            f"offrl train needs an algorithm: offrl train ALGO --dataset ...; "
            f"ALGO is one of {', '.join(registry.OFFLINE_ALGORITHMS)}"
        )
    name = argv[0].replace("-", "_").lower()
    if name not in registry.OFFLINE_ALGORITHMS:
        if name in ("rlpd", "h2o", "resfit"):
            _fail(f"'{name}' learns online with offline data: offrl finetune {name} ...")
        if name == "sac":
            _fail("'sac' trains online: offrl online sac --env ENV")
        _fail(
            f"unknown algorithm '{argv[0]}'; offrl train runs "
            f"{', '.join(registry.OFFLINE_ALGORITHMS)}"
        )
    algo_module = registry.get(name)
    rest = _split_commas(argv[1:])
    # --resume continues with the saved configuration: options left out keep their
    # saved values, and only an option that contradicts them is refused.
    train_defaults, algo_defaults, dataset_default = TrainConfig(), algo_module.Config(), None
    run_dir_arg = _option_value(rest, "--run-dir")
    if "--resume" in rest and run_dir_arg is not None:
        saved, saved_algo, algo_defaults, train_defaults = parse_run_config(
            pathlib.Path(run_dir_arg)
        )
        if saved_algo is not algo_module or saved["kind"] not in ("offline", "barrier"):
            _fail(
                f"{run_dir_arg} holds a {saved['algorithm']} run ({saved['kind']}); resume it with "
                f"offrl train {saved['algorithm']} --run-dir {run_dir_arg} --resume"
            )
        dataset_default = saved.get("dataset")
        train_defaults = dataclasses.replace(train_defaults, progress=True)  # not a setting
    elif "--preset" in rest:
        algo_defaults = _preset_defaults(name, algo_module, _option_value(rest, "--dataset"))

    @dataclasses.dataclass(frozen=True)
    class Args:
        dataset: str | None = dataset_default
        """Dataset: a .hdf5 file (D4RL- or robomimic-style), a Minari dataset directory or id,
        or suite:NAME (see `offrl suite list`). Required, except with --resume (the saved
        one)."""
        run_dir: str | None = None
        """Run directory (default: runs/ALGO-DATASET[-N])."""
        resume: bool = False
        """Continue the run in --run-dir from its last checkpoint, with its saved
        configuration (options given must agree with it)."""
        stop_after: int | None = None
        """Stop after this many updates with a checkpoint (time-boxed jobs); continue with
        --resume."""
        preset: bool = False
        """Start from the algorithm's per-dataset settings from its paper's released
        configs (ReBRAC, EDAC, SAC-N, MOPO, MOBILE) for a suite dataset; options given
        override them."""
        train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = train_defaults
        algo: Annotated[algo_module.Config, tyro.conf.OmitArgPrefixes] = algo_defaults

    Args.__doc__ = f"Train {name} offline.\n\n{_plain(algo_module.__doc__)}"
    args = tyro.cli(Args, args=rest, prog=f"offrl train {name}")
    if args.resume and args.run_dir is None:
        _fail("--resume needs --run-dir: the run to continue")
    if args.dataset is None:
        _fail("--dataset is required: the data to train on (see offrl suite list)")
    run_dir = args.run_dir or _default_run_dir(name, args.dataset)
    summary = train(
        name,
        args.dataset,
        run_dir,
        args.algo,
        args.train,
        resume=args.resume,
        stop_after=args.stop_after,
    )
    _print_summary(run_dir, summary)


def _preset_defaults(name: str, algo_module, dataset: str | None):
    preset = getattr(algo_module.Config, "preset", None)
    if preset is None:
        with_presets = [
            n for n in registry.OFFLINE_ALGORITHMS if hasattr(registry.get(n).Config, "preset")
        ]
        _fail(f"{name} has no per-dataset presets; --preset works with {', '.join(with_presets)}")
    if dataset is None:
        _fail("--preset needs --dataset: the presets are per dataset")
    try:
        return preset(dataset)
    except KeyError as error:
        _fail(f"--preset: {error.args[0]}")


def _print_summary(run_dir: str, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from offrl.run.rundir import mean_std

    console = Console()
    on = {"heldout": "held-out episodes", "periodic": "evaluation episodes"}
    caption = on.get(summary.get("scores_on"), "")
    if summary.get("heldout"):
        caption += f" (resets {summary['heldout']['reset_seeds']}); ± sample std across seeds"
    table = Table(title=f"{summary['algorithm']} — {run_dir}", caption=caption or None)
    table.add_column("seed")
    table.add_column(f"final {summary.get('score', 'score')}")
    table.add_column(f"best {summary.get('score', 'score')}")
    for i, seed in enumerate(summary["seeds"]):
        if "final_per_seed" in summary:
            table.add_row(
                str(seed),
                f"{summary['final_per_seed'][i]:.1f}",
                f"{summary['best_per_seed'][i]:.1f}",
            )
    if "final_mean" in summary:
        table.add_row(
            "mean ± std",
            mean_std(summary["final_mean"], summary["final_std"]),
            mean_std(summary.get("best_mean"), summary.get("best_std")),
        )
    console.print(table)
    ups = summary.get("updates_per_second_per_seed")
    if ups:
        wall, this_process = summary.get("wall_seconds"), summary.get("wall_seconds_this_process")
        resumed = summary.get("resumed_at_step")
        if wall is None:  # resumed from a run that did not log its time
            wall = f"over {this_process:.0f} s (the time before step {resumed} is unknown)"
        elif resumed:
            wall = f"{wall:.0f} s ({this_process:.0f} s since the resume at step {resumed})"
        else:
            wall = f"{wall:.0f} s"
        console.print(
            f"{summary['steps']} updates in {wall}; "
            f"{ups:.0f} updates/s per seed, {len(summary['seeds'])} seed(s) in parallel"
        )


def cmd_safety(argv: list[str]) -> None:
    _group_help(
        argv,
        "usage: offrl safety fit --dataset DATASET [--run-dir DIR] [options]: learn a control "
        "barrier function (V-OCBF) from a dataset with safety margins; then offrl eval "
        "POLICY_RUN --filter DIR puts it in front of any policy (offrl safety fit --help lists "
        "the options)",
    )
    if not argv or argv[0] != "fit":
        _fail(
            "usage: offrl safety fit --dataset DATASET [--run-dir DIR] [options]: learn a "
            "control barrier function (V-OCBF) from a dataset with safety margins; then "
            "offrl eval POLICY_RUN --filter DIR puts it in front of any policy"
        )
    cmd_train(["vocbf", *argv[1:]])


@dataclasses.dataclass(frozen=True)
class PretrainValue:
    """Pre-train a value network by TD learning on trajectories whose actions are not
    needed (V-PTR's idea on states); offrl train iql --value-init FILE starts from it
    (its value network, and the hidden layers of its actor and critics)."""

    dataset: tyro.conf.Positional[str]
    """Trajectories with rewards (actions, if any, are not read)."""
    output: str
    """The pre-training file to write (.npz)."""
    steps: int = 20_000
    """TD updates."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths: those of the IQL run it will initialise."""
    discount: float = 0.99
    """Discount factor gamma (the IQL run's)."""
    expectile: float = 0.7
    """Expectile of the TD regression (the IQL run's)."""
    seed: int = 0
    """Seed of the network and the batches."""


def cmd_pretrain(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.algos import value_pretraining
    from offrl.data.loading import load_dataset

    usage = "usage: offrl pretrain value DATASET --output FILE [options] (add --help)"
    _group_help(argv, usage)
    if not argv or argv[0] != "value":
        _fail(usage)
    args = tyro.cli(PretrainValue, args=argv[1:], prog="offrl pretrain value")
    if args.steps <= 0 or not 0.0 < args.expectile < 1.0 or not 0.0 <= args.discount < 1.0:
        _fail("--steps must be positive, --expectile in (0, 1) and --discount in [0, 1)")
    config = value_pretraining.Config(
        hidden_dims=args.hidden_dims, discount=args.discount, expectile=args.expectile,
        steps=args.steps, seed=args.seed,
    )  # fmt: skip
    pretrained = value_pretraining.pretrain(load_dataset(args.dataset), config)
    path = value_pretraining.save(pathlib.Path(args.output), pretrained)
    Console().print(
        f"value TD loss {pretrained.losses[:100].mean():.4f} -> "
        f"{pretrained.losses[-100:].mean():.4f}; wrote {path} (offrl train iql --value-init "
        f"{path})"
    )
