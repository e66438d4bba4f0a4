"""The ``offrl`` command.

    offrl train ALGO --dataset DATASET [options]   train offline (bc, td3_bc, iql, cql, ...)
    offrl eval RUN_DIR [--filter BARRIER_RUN]      evaluate a run's checkpoint (safety-filtered)
    offrl safety fit --dataset DATASET [options]   learn a barrier (V-OCBF) and its filter
    offrl select RUN_DIR... [options]              choose a checkpoint offline (FQE, diagnostics)
    offrl report RUN_DIR... [--output FILE]        a self-contained HTML report, offline only
    offrl data inspect|validate|convert ...        look at, check or convert a dataset
    offrl data quality|curate|weigh ...            score episodes; keep or weigh the best
    offrl data augment synther|guda ...            more data: diffusion samples, guided segments
    offrl label preferences|rewards|actions ...    rewards from preferences, inferred actions
    offrl label progress ...                       a progress reward from demonstrations
    offrl pretrain value DATASET --output FILE     value pre-training for IQL (--value-init)
    offrl online sac --env ENV [options]           train online (SAC)
    offrl finetune ALGO --from RUN_DIR [options]   fine-tune online (iql, calql, cql, resfit)
    offrl finetune ALGO --dataset D [options]      online with offline data (rlpd, h2o)
    offrl suite list|build|card [NAME]             the built-in datasets and their cards
    offrl bench --algorithms ... --datasets ...    algorithms x datasets x seeds, one table
    offrl search --algorithm A --dataset D          search settings offline (Optuna; FQE, AM-Q)
    offrl sweep SWEEP.toml [--address RAY]         a sweep on Ray Tune, the bench table
    offrl export RUN_DIR [--filter BARRIER_RUN]    the policy as ONNX (offrl.deploy runs it)
    offrl quickstart                               the small end-to-end demo

``offrl COMMAND --help`` lists every option with its documentation. An error is
one line (exit status 2 for bad input); ``--debug`` anywhere, or ``OFFRL_DEBUG=1``,
shows its traceback.
"""

import os
import sys

from offrl.cli.common import _fail, _message, _option_value
from offrl.cli.data import cmd_data
from offrl.cli.evaluate import cmd_eval
from offrl.cli.interact import cmd_finetune, cmd_online
from offrl.cli.jobs import cmd_bench, cmd_export, cmd_quickstart, cmd_search, cmd_sweep
from offrl.cli.label import cmd_label
from offrl.cli.offline import cmd_report, cmd_select
from offrl.cli.suite import cmd_suite
from offrl.cli.train import cmd_pretrain, cmd_safety, cmd_train

_USAGE = __doc__.replace("``", "`")


def _trust_env_ids(argv: list[str]) -> None:
    """Environment ids typed on the command line may name a module (``module:Env``);
    ids read from datasets and run directories may not (see offrl.envs.allow_env_id)."""
    from offrl.envs.registry import allow_env_id

    for flag in ("--env-id", "--env", "--eval-env"):
        allow_env_id(_option_value(argv, flag))


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "data": cmd_data,
    "label": cmd_label,
    "online": cmd_online,
    "finetune": cmd_finetune,
    "suite": cmd_suite,
    "select": cmd_select,
    "report": cmd_report,
    "bench": cmd_bench,
    "search": cmd_search,
    "export": cmd_export,
    "sweep": cmd_sweep,
    "quickstart": cmd_quickstart,
    "safety": cmd_safety,
    "pretrain": cmd_pretrain,
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
