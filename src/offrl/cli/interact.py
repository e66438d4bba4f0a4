"""offrl online and offrl finetune: one interaction loop, one command."""

import dataclasses
import json
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


def cmd_online(argv: list[str]) -> None:
    usage = (
        "usage: offrl online ALGO --env ENV [options]   (offrl online ALGO --help lists "
        f"them)\nALGO: {', '.join(registry.ONLINE_ALGORITHMS)}"
    )
    _group_help(argv, usage)
    if not argv or argv[0].replace("-", "_").lower() not in registry.ONLINE_ALGORITHMS:
        _fail(usage)
    _interact(argv, online=True)


def cmd_finetune(argv: list[str]) -> None:
    _group_help(
        argv,
        "usage: offrl finetune ALGO --from RUN_DIR [options]   (from an offline run)\n"
        "       offrl finetune ALGO --dataset DATASET [options] (online with offline data)\n"
        f"ALGO: {', '.join(registry.FINETUNE_ALGORITHMS)}; offrl finetune ALGO --help lists "
        "the options",
    )
    if not argv or argv[0].startswith("-"):
        _fail(
            "offrl finetune needs an algorithm: offrl finetune ALGO --from RUN_DIR ...; "
            f"ALGO is one of {', '.join(registry.FINETUNE_ALGORITHMS)}"
        )
    name = argv[0].replace("-", "_").lower()
    if name not in registry.FINETUNE_ALGORITHMS:
        known = name in registry.names()
        _fail(
            (f"'{name}' is not fine-tuned online" if known else f"unknown algorithm '{argv[0]}'")
            + f"; offrl finetune runs {', '.join(registry.FINETUNE_ALGORITHMS)}"
        )
    _interact(argv, online=False)


ONLINE_DEFAULTS = {
    "online_steps": 1_000_000,
    "seeds": (0,),
    "early_evaluations": 0,
    "checkpoint_every": 50_000,
}


def _interact(argv: list[str], online: bool) -> None:
    """``offrl online`` and ``offrl finetune``: one interaction loop, one command."""
    from offrl.finetune.loop import finetune
    from offrl.run.rundir import load_run, parse_run_config
    from offrl.run.settings import FinetuneConfig

    name = argv[0].replace("-", "_").lower()
    command = "online" if online else "finetune"
    algo_module = registry.get(name)
    defaults = algo_module.Config()
    settings = FinetuneConfig(**ONLINE_DEFAULTS) if online else FinetuneConfig()
    rest = _split_commas(argv[1:])
    from_default = dataset_default = None
    # A run's own settings are the defaults when fine-tuning the same algorithm.
    source = _option_value(rest, "--from") or _option_value(rest, "--from-run")
    if source is not None:
        context = load_run(source)
        if type(context.algo_config) is algo_module.Config:
            defaults = context.algo_config
    # --resume continues with the saved configuration (options given must agree).
    run_dir_arg = _option_value(rest, "--run-dir")
    if "--resume" in rest and run_dir_arg is not None:
        saved, saved_algo, defaults, saved_settings = parse_run_config(pathlib.Path(run_dir_arg))
        if saved_algo is not algo_module or saved["kind"] not in ("online", "finetune"):
            _fail(
                f"{run_dir_arg} holds a {saved['algorithm']} run ({saved['kind']}); resume it "
                f"with the command that started it and --run-dir {run_dir_arg} --resume"
            )
        if saved_settings is not None:
            settings = dataclasses.replace(saved_settings, progress=True)
        from_default = saved.get("source", {}).get("from_run")
        dataset_default = saved.get("source", {}).get("dataset")

    @dataclasses.dataclass(frozen=True)
    class Common:
        run_dir: str | None = None
        """Run directory (default: runs/ALGO-ENV[-N] online, runs/finetune-ALGO-NAME[-N])."""
        resume: bool = False
        """Continue the run in --run-dir from its last checkpoint, with its saved
        configuration (options given must agree with it)."""
        stop_after: int | None = None
        """Stop after this many steps with a checkpoint; continue with --resume."""
        finetune: Annotated[FinetuneConfig, tyro.conf.OmitArgPrefixes] = settings
        algo: Annotated[algo_module.Config, tyro.conf.OmitArgPrefixes] = defaults

    if online:

        @dataclasses.dataclass(frozen=True)
        class Args(Common):
            from_run = None  # not options: online training has no offline data
            dataset = None

        Args.__doc__ = f"Train {name} online.\n\n{_plain(algo_module.__doc__)}"
    else:

        @dataclasses.dataclass(frozen=True)
        class Args(Common):
            from_run: Annotated[
                str | None,
                tyro.conf.arg(
                    aliases=["--from"],
                    help="Offline run to start from (iql, calql and cql: the same "
                    "algorithm; resfit: a bc run).",
                ),
            ] = from_default
            dataset: Annotated[
                str | None,
                tyro.conf.arg(
                    help="Offline data when starting from scratch (rlpd, h2o); default: the run's."
                ),
            ] = dataset_default

        Args.__doc__ = f"Fine-tune {name} online.\n\n{_plain(algo_module.__doc__)}"
    args = tyro.cli(Args, args=rest, prog=f"offrl {command} {name}")
    if args.resume and args.run_dir is None:
        _fail("--resume needs --run-dir: the run to continue")
    if online:
        if args.finetune.env is None:
            _fail("--env is required: the environment to train in, e.g. --env Pendulum-v1")
        run_dir = args.run_dir or _default_run_dir(name, args.finetune.env)
    else:
        if args.from_run is None and args.dataset is None:
            _fail(
                "pass --from RUN_DIR (an offline run) or --dataset DATASET (to start from scratch)"
            )
        label = pathlib.Path(args.from_run).name if args.from_run else args.dataset
        run_dir = args.run_dir or _default_run_dir(f"finetune-{name}", label)
    summary = finetune(
        name,
        run_dir,
        args.finetune,
        from_run=args.from_run,
        dataset=args.dataset,
        algo_config=args.algo,
        resume=args.resume,
        stop_after=args.stop_after,
    )
    keys = ("final_mean", "final_std", "best_mean", "best_std", "scores_on", "regret_mean")
    if not online:
        keys = ("offline_mean", "initial_drop_mean", *keys)
    print(json.dumps({"run_dir": run_dir, **{k: summary.get(k) for k in keys}}))
