"""The ``offrl`` command.

    offrl train ALGO --dataset DATASET [options]   train offline (bc, td3_bc, iql, cql, ...)
    offrl eval RUN_DIR [--filter BARRIER_RUN]      evaluate a run's checkpoint (safety-filtered)
    offrl safety fit --dataset DATASET [options]   learn a barrier (V-OCBF) and its filter
    offrl select RUN_DIR... [options]              choose a checkpoint offline (FQE, diagnostics)
    offrl report RUN_DIR... [--output FILE]        a self-contained HTML report, offline only
    offrl data inspect|validate|convert ...        look at, check or convert a dataset
    offrl online sac --env ENV [options]           train online (SAC)
    offrl finetune ALGO --from RUN_DIR [options]   fine-tune online (iql, calql, cql, resfit)
    offrl finetune ALGO --dataset D [options]      online with offline data (rlpd, h2o)
    offrl suite list|build|card [NAME]             the built-in datasets and their cards
    offrl bench --algorithms ... --datasets ...    algorithms x datasets x seeds, one table
    offrl quickstart                               the small end-to-end demo

``offrl COMMAND --help`` lists every option with its documentation. An error is
one line (exit status 2 for bad input); ``--debug`` anywhere, or ``OFFRL_DEBUG=1``,
shows its traceback.
"""

import dataclasses
import json
import os
import pathlib
import sys
from typing import Annotated, Literal

import tyro

from offrl.core import registry

_USAGE = __doc__.replace("``", "`")


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


def _trust_env_ids(argv: list[str]) -> None:
    """Environment ids typed on the command line may name a module (``module:Env``);
    ids read from datasets and run directories may not (see offrl.envs.allow_env_id)."""
    from offrl.envs.registry import allow_env_id

    for flag in ("--env-id", "--env", "--eval-env"):
        allow_env_id(_option_value(argv, flag))


# --------------------------------------------------------------------------- train
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


# ---------------------------------------------------------------------------- eval
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


# ------------------------------------------------------------------ select / report
@dataclasses.dataclass(frozen=True)
class _OfflineArgs:
    """Offline evaluation of run directories: nothing here touches an environment."""

    run_dirs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories written by `offrl train`."""
    dataset: str | None = None
    """The training dataset (default: the one recorded in each run's config.json)."""
    fqe_updates: int = 10_000
    """FQE gradient updates per fit."""
    bootstrap: int = 5
    """FQE fits on episode resamples per checkpoint (the interval); 0 = one fit."""
    fqe_discount: float = 0.99
    """Discount of the FQE value."""
    seed: int = 0
    """Seed of the FQE fits and resamples."""
    steps: tuple[int, ...] | None = None
    """Analyze only these checkpoint steps (default: every checkpoint)."""


def _fqe_config(args: _OfflineArgs):
    from offrl.evaluate.fqe import FQEConfig

    if args.fqe_updates < 1:
        _fail(f"--fqe-updates must be a positive integer, got {args.fqe_updates}")
    if args.bootstrap < 0:
        _fail(f"--bootstrap must be 0 (one fit) or a positive integer, got {args.bootstrap}")
    if not 0.0 < args.fqe_discount < 1.0:
        _fail(f"--fqe-discount must be in (0, 1), got {args.fqe_discount}")

    return FQEConfig(
        updates=args.fqe_updates,
        bootstrap=args.bootstrap,
        discount=args.fqe_discount,
        seed=args.seed,
    )


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


# ---------------------------------------------------------------------------- data
def cmd_data(argv: list[str]) -> None:
    from rich.console import Console

    from offrl.data.loading import load_dataset

    console = Console()
    usage = "usage: offrl data inspect|validate|convert ... (add --help to any of them)"
    _group_help(argv, usage)
    if not argv or argv[0] not in ("inspect", "validate", "convert"):
        _fail(usage)
    verb, rest = argv[0], argv[1:]

    @dataclasses.dataclass(frozen=True)
    class Source:
        """Load a dataset (every load validates it)."""

        dataset: tyro.conf.Positional[str]
        """A .hdf5 file, a Minari dataset directory or id, or suite:NAME."""
        observation_keys: tuple[str, ...] | None = None
        """robomimic-style files: the obs/<key> arrays that form the observation, in order."""
        env_id: str | None = None
        """The environment the data came from (D4RL-style files: checks shapes and bounds)."""

    @dataclasses.dataclass(frozen=True)
    class Inspect(Source):
        """Summarize a dataset: sizes, returns, lengths, actions."""

        plot: str | None = None
        """Also write the return histogram and action distributions to this PNG."""

    @dataclasses.dataclass(frozen=True)
    class Convert(Source):
        """Convert a dataset to a Minari dataset directory."""

        output: tyro.conf.Positional[str] = ""
        """The Minari dataset directory to write."""
        format: Literal["hdf5", "arrow"] = "hdf5"
        """Minari back end."""
        overwrite: bool = False
        """Replace an existing output directory."""

    cls = {"convert": Convert, "inspect": Inspect}.get(verb, Source)
    args = tyro.cli(cls, args=rest, prog=f"offrl data {verb}")
    dataset = load_dataset(args.dataset, args.observation_keys, args.env_id)
    if verb == "validate":
        console.print(
            f"[green]valid[/]: {dataset.size} transitions in {dataset.num_episodes} "
            f"episodes ({args.dataset})"
        )
    elif verb == "inspect":
        from offrl.data.summary import print_summary

        print_summary(dataset, console)
        if args.plot:
            from offrl.evaluate.report import dataset_figure

            dataset_figure(dataset).savefig(args.plot, dpi=100, bbox_inches="tight")
            console.print(f"wrote {args.plot}")
    else:
        from offrl.data.formats.minari import write_minari

        if not args.output:
            _fail("offrl data convert SOURCE OUTPUT: OUTPUT is missing")
        path = write_minari(dataset, args.output, data_format=args.format, overwrite=args.overwrite)
        console.print(f"wrote {dataset.size} transitions to {path} (Minari, {args.format})")


# ------------------------------------------------------------- online and finetune
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


#: ``offrl online``'s defaults where they differ from fine-tuning's.
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

    if online:

        @dataclasses.dataclass(frozen=True)
        class Args:
            run_dir: str | None = None
            """Run directory (default: runs/ALGO-ENV[-N])."""
            resume: bool = False
            """Continue the run in --run-dir from its last checkpoint, with its saved
            configuration (options given must agree with it)."""
            stop_after: int | None = None
            """Stop after this many steps with a checkpoint; continue with --resume."""
            finetune: Annotated[FinetuneConfig, tyro.conf.OmitArgPrefixes] = settings
            algo: Annotated[algo_module.Config, tyro.conf.OmitArgPrefixes] = defaults

            from_run = None
            dataset = None

        Args.__doc__ = f"Train {name} online.\n\n{_plain(algo_module.__doc__)}"
    else:

        @dataclasses.dataclass(frozen=True)
        class Args:
            from_run: Annotated[str | None, tyro.conf.arg(aliases=["--from"])] = from_default
            """Offline run to start from (iql, calql and cql: the same algorithm; resfit: a
            bc run)."""
            dataset: str | None = dataset_default
            """Offline data when starting from scratch (rlpd, h2o); default: the run's."""
            run_dir: str | None = None
            """Run directory (default: runs/finetune-ALGO-NAME[-N])."""
            resume: bool = False
            """Continue the run in --run-dir from its last checkpoint, with its saved
            configuration (options given must agree with it)."""
            stop_after: int | None = None
            """Stop after this many steps with a checkpoint; continue with --resume."""
            finetune: Annotated[FinetuneConfig, tyro.conf.OmitArgPrefixes] = settings
            algo: Annotated[algo_module.Config, tyro.conf.OmitArgPrefixes] = defaults

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


# --------------------------------------------------------------------------- suite
def cmd_suite(argv: list[str]) -> None:
    from rich.console import Console

    from offrl import suites

    console = Console()
    usage = "usage: offrl suite list | offrl suite build NAME [--force] | offrl suite card NAME"
    _group_help(argv, usage)
    if not argv or argv[0] not in ("list", "build", "card"):
        _fail(usage)
    if argv[0] == "card":
        if len(argv) != 2:
            _fail("usage: offrl suite card NAME")
        console.print(suites.read_card(argv[1].removeprefix("suite:")))
        return
    if argv[0] == "list":
        for name in suites.available():
            path = suites.cache_dir() / name
            missing = suites.missing_behavior(name)
            if path.exists():
                state = f"built: {path}"
            elif missing:
                state = f"not buildable here: {missing}"
            else:
                state = f"not built: {path}"
            console.print(f"suite:{name}  ({state})")
        return

    @dataclasses.dataclass(frozen=True)
    class Args:
        """Build a suite dataset into the local cache ($OFFRL_DATA_DIR)."""

        name: tyro.conf.Positional[str]
        """The dataset, e.g. pendulum-mixed."""
        force: bool = False
        """Rebuild even if it is cached."""

    args = tyro.cli(Args, args=argv[1:], prog="offrl suite build")
    path = suites.build_suite_dataset(args.name.removeprefix("suite:"), force=args.force)
    console.print(f"built suite:{args.name.removeprefix('suite:')} at {path}")


# --------------------------------------------------------------------------- bench
def cmd_bench(argv: list[str]) -> None:
    from offrl.bench import BenchConfig, run_bench

    args = tyro.cli(BenchConfig, args=_split_commas(argv), prog="offrl bench")
    result = run_bench(args)  # checks every setting before a cell runs
    print(pathlib.Path(result["files"][0]).read_text())
    print("written:", ", ".join(result["files"]))


# ---------------------------------------------------------------------- quickstart
def cmd_quickstart(argv: list[str]) -> None:
    from offrl.quickstart import QuickstartConfig, run_quickstart

    args = tyro.cli(QuickstartConfig, args=argv, prog="offrl quickstart")
    run_quickstart(args)


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


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "data": cmd_data,
    "online": cmd_online,
    "finetune": cmd_finetune,
    "suite": cmd_suite,
    "select": cmd_select,
    "report": cmd_report,
    "bench": cmd_bench,
    "quickstart": cmd_quickstart,
    "safety": cmd_safety,
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises: the project's errors and the built-in ones its checks use."""
    from offrl.data.validate import DatasetError
    from offrl.envs.registry import EnvError
    from offrl.run.checkpoint import CheckpointError
    from offrl.run.settings import RunError
    from offrl.suites.behavior import BehaviorError

    return (
        RunError,
        DatasetError,
        EnvError,
        CheckpointError,
        BehaviorError,
        ValueError,
        KeyError,
        FileNotFoundError,
        FileExistsError,
    )


def _error_line(error: BaseException) -> str:
    from offrl.data.validate import DatasetError

    if isinstance(error, DatasetError):
        return f"invalid dataset: {_message(error)}"
    return _message(error)


def main(argv: list[str] | None = None) -> None:
    """The ``offrl`` command. The one place errors become output: bad input (the
    project's errors, a bad value, a missing file) is one line on stderr and exit
    status 2; anything else is one line naming its type and exit status 1. ``--debug``
    (or ``OFFRL_DEBUG=1``) shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("OFFRL_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_USAGE.strip())
        raise SystemExit(0 if argv else 2)
    if argv[0] in ("--version", "version"):
        from offrl import __version__

        print(f"offrl {__version__}")
        return
    command = COMMANDS.get(argv[0])
    if command is None:
        _fail(f"unknown command '{argv[0]}'; commands: {', '.join(COMMANDS)}")
    _trust_env_ids(argv[1:])
    from offrl.run.interrupt import RunInterrupted

    try:
        command(argv[1:])
    except RunInterrupted as stopped:
        print(f"stopped: {stopped}", file=sys.stderr)
        raise SystemExit(128 + int(stopped.signum)) from None
    except KeyboardInterrupt as stopped:
        print(f"stopped: {stopped or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except _user_errors() as error:
        if debug:
            raise
        _fail(_error_line(error))
    except Exception as error:
        if debug:
            raise
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(type(error).__name__)}: {escape(_message(error))} "
            "(an unexpected error; rerun with --debug for the traceback, and please report it)"
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
