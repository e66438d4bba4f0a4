"""The run directory, written once for every kind of run.

Layout::

    config.json       the resolved configuration: kind, algorithm, seeds, settings
    metrics.jsonl     one JSON object per logged step (train/, valid/, eval/)
    checkpoints/      step_<N>/ written atomically (offrl.run.checkpoint), plus the
                      interaction loop's replay_<N>.npz
    tensorboard/      event files (with --tensorboard)
    summary.json      scores (held-out final and best, periodic curve), timings

``config.json`` has one schema. Every run records ``kind`` (``offline``,
``online``, ``finetune``; an offline run of an algorithm that learns a safety
filter is ``barrier``), ``algorithm``, ``algorithm_config``, ``seeds``,
``observation_dim``, ``action_dim``, ``env_id``, ``dataset`` (``None`` online)
and the settings of its kind under ``train_config`` (offline, barrier) or
``finetune_config`` (online, finetune). :func:`load_run` reads all of them.

Evaluations have one record shape (:func:`evaluation_record`), the same in
``metrics.jsonl``, in ``summary.json`` and on resume. The reported final and
best scores are measured on held-out episodes (``HELDOUT_SEED``), which neither
the periodic evaluations nor the choice of the best checkpoint saw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np

from offrl import __version__
from offrl.core import registry
from offrl.core.history import bind_policy
from offrl.core.trainer import init_states, seed_keys
from offrl.data.preprocess import Preprocessor
from offrl.envs.rollout import HELDOUT_SEED, PERIODIC_SEED, EvaluationResult, evaluate
from offrl.run import checkpoint
from offrl.run.loggers import JsonlLogger, MultiLogger, TensorBoardLogger
from offrl.run.settings import (
    OPTION_FIELDS,
    SETTINGS,
    RunError,
    RunOptions,
    check_seeds,
    from_dict,
)

KINDS = ("offline", "online", "finetune", "barrier")


# ------------------------------------------------------------------ config.json
def write_json_atomic(path: pathlib.Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _settings_key(saved: dict) -> str:
    return "finetune_config" if saved.get("kind") in ("online", "finetune") else "train_config"


def _upgrade(saved: dict) -> dict:
    """Runs written before ``kind`` existed: infer it, and the seeds."""
    if "kind" in saved:
        return saved
    saved = dict(saved)
    mode = saved.get("mode")
    saved["kind"] = {"online": "online", "finetune": "finetune"}.get(mode, "offline")
    if mode in ("online", "finetune") and "finetune_config" not in saved:
        saved["finetune_config"] = {}  # an old online run: its settings used other names
    if "seeds" not in saved and isinstance(saved.get("train_config"), dict):
        saved["seeds"] = saved["train_config"].get("seeds")
    return saved


def read_run_config(directory: pathlib.Path) -> dict:
    """``config.json`` of a run directory as a dict, or a one-line :class:`RunError`
    naming the file."""
    directory = pathlib.Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise RunError(
            f"{directory} is not a run directory (no config.json); "
            "pass the directory that `offrl train` (or finetune, online) created"
        )
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(
            f"{config_path} is not valid JSON ({error}); restore it from a copy or retrain"
        ) from error
    if not isinstance(saved, dict):
        raise RunError(f"{config_path} holds a {type(saved).__name__}, not a run configuration")
    saved = _upgrade(saved)
    required = {
        "kind": str,
        "algorithm": str,
        "algorithm_config": dict,
        _settings_key(saved): dict,
        "seeds": list,
        "observation_dim": int,
        "action_dim": int,
    }
    for key, kind in required.items():
        value = saved.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RunError(
                f"{config_path}: '{key}' is "
                + ("missing" if key not in saved else f"{value!r}, not a {kind.__name__}")
                + "; the file was edited or damaged: restore it or start a new run"
            )
    if saved["kind"] not in KINDS:
        raise RunError(f"{config_path}: 'kind' is {saved['kind']!r}, not one of {KINDS}")
    try:
        check_seeds(saved["seeds"])
    except RunError as error:
        raise RunError(f"{config_path}: {error}") from error
    if saved["observation_dim"] < 1 or saved["action_dim"] < 1:
        raise RunError(f"{config_path}: observation_dim and action_dim must be positive")
    env_id = saved.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        raise RunError(f"{config_path}: 'env_id' is {env_id!r}, not a string")
    return saved


def parse_run_config(directory: pathlib.Path):
    """``(saved, algo, algo_config, settings)`` from a run's ``config.json``, each
    shape checked; ``settings`` is the kind's ``TrainConfig`` or ``FinetuneConfig``
    (``None`` for an online run written before the schema)."""
    directory = pathlib.Path(directory)
    saved = read_run_config(directory)
    config_path = directory / "config.json"
    try:
        algo = registry.get(saved["algorithm"])
    except KeyError as error:
        raise RunError(f"{config_path}: {error.args[0]}") from error
    algo_config = from_dict(algo.Config, saved["algorithm_config"], f"{config_path}")
    key = _settings_key(saved)
    settings = from_dict(SETTINGS[key], saved[key], f"{config_path}") if saved[key] else None
    return saved, algo, algo_config, settings


def _comparable(value):
    """A saved configuration without what a resume may change (the run options,
    the command line, the version); a setting left at ``None`` equals its absence (a
    run saved before the setting existed)."""
    if isinstance(value, dict):
        return {
            k: _comparable(v)
            for k, v in value.items()
            if k not in OPTION_FIELDS and k not in ("command", "offrl_version") and v is not None
        }
    return value


def open_run(run_dir: pathlib.Path, resolved: dict, resume: bool) -> None:
    """Create ``run_dir`` and write ``config.json`` (a new run), or check that
    ``resolved`` matches the saved configuration (a resume).

    ``resolved`` must carry ``kind`` and ``seeds``; the command line and the offrl
    version are added. Nothing is written when the check fails.
    """
    check_new_or_resumable(run_dir, resume)
    assert resolved["kind"] in KINDS, resolved["kind"]
    if resume:
        saved = _comparable(read_run_config(run_dir))
        now = _comparable(json.loads(json.dumps(resolved)))
        differences = sorted(k for k in set(now) | set(saved) if now.get(k) != saved.get(k))
        if differences:
            detail = "; ".join(
                f"{k}: saved {saved.get(k)!r} != now {now.get(k)!r}" for k in differences
            )
            raise RunError(
                f"cannot resume {run_dir}: the configuration differs ({detail}). "
                "Resume with the original arguments, or start a new run directory"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {**resolved, "offrl_version": __version__, "command": " ".join(sys.argv)}
    write_json_atomic(run_dir / "config.json", resolved)


def check_new_or_resumable(run_dir: pathlib.Path, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume what is not one (before any work)."""
    if resume and not (run_dir / "config.json").is_file():
        raise RunError(
            f"cannot resume: {run_dir} has no config.json; start a new run without --resume"
        )
    if not resume and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunError(
            f"{run_dir} already exists and is not empty; pass --resume to continue "
            "it, or choose another --run-dir (nothing was overwritten)"
        )


# ------------------------------------------------------------------ checkpoints
def payload(states, keys, step: int, pre: Preprocessor, best: dict | None = None) -> dict:
    """What a checkpoint holds: the train states and sampling keys of every seed,
    the step, the preprocessing and (from :class:`BestPolicy`) the best states."""
    out = {"states": states, "keys": keys, "step": np.int32(step), "preprocessor": pre}
    if best is not None:
        out["best"] = best
    return out


def restore_latest(ckpt_dir: pathlib.Path, template: dict, **kwargs):
    """:func:`offrl.run.checkpoint.restore_latest` with its errors as :class:`RunError`."""
    try:
        return checkpoint.restore_latest(ckpt_dir, template, **kwargs)
    except checkpoint.CheckpointError as error:
        raise RunError(str(error)) from error


class BestPolicy:
    """Each seed's best state by the periodic evaluations (ties keep the earlier),
    kept on the device and in checkpoints, scored at the end on held-out episodes."""

    def __init__(self, states, num_seeds: int):
        self.states = states
        self.scores = np.full(num_seeds, -np.inf)
        self.steps = np.full(num_seeds, -1, np.int64)

    def update(self, states, scores: np.ndarray, step: int) -> None:
        better = np.asarray(scores, np.float64) > self.scores
        if not better.any():
            return
        mask = jnp.asarray(better)
        self.states = jax.tree_util.tree_map(
            lambda new, old: jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            states,
            self.states,
        )
        self.scores = np.where(better, scores, self.scores)
        self.steps = np.where(better, step, self.steps)

    def state_dict(self) -> dict:
        return {
            "states": self.states,
            "scores": np.asarray(self.scores, np.float64),
            "steps": np.asarray(self.steps, np.int64),
        }

    def load(self, saved: dict | None) -> None:
        if saved is None:  # a checkpoint written before the best was kept
            return
        self.states = saved["states"]
        self.scores = np.asarray(saved["scores"], np.float64)
        self.steps = np.asarray(saved["steps"], np.int64)


@dataclasses.dataclass
class RunContext:
    """What a loaded run holds: enough to act, evaluate or continue."""

    directory: pathlib.Path
    kind: str
    algo: ModuleType
    algo_config: object
    settings: object
    seeds: tuple[int, ...]
    preprocessor: Preprocessor
    states: object
    keys: jax.Array
    step: int
    observation_dim: int
    action_dim: int
    env_id: str | None
    config: dict


def load_run(directory: str | os.PathLike, step: int | None = None) -> RunContext:
    """Load a run directory of any kind and a checkpoint (the latest by default)."""
    directory = pathlib.Path(directory)
    saved, algo, algo_config, settings = parse_run_config(directory)
    obs_dim, act_dim = saved["observation_dim"], saved["action_dim"]
    seeds = tuple(saved["seeds"])
    ckpt_dir = directory / "checkpoints"
    init_keys, trainer_keys = seed_keys(seeds)
    template_states = init_states(algo, algo_config, obs_dim, act_dim, init_keys)
    template = payload(
        template_states,
        trainer_keys,
        0,
        Preprocessor.identity(obs_dim, act_dim),
        BestPolicy(template_states, len(seeds)).state_dict(),
    )
    try:
        if step is None:
            step, restored = checkpoint.restore_latest(ckpt_dir, template)
        else:
            restored = checkpoint.restore(ckpt_dir, step, template)
    except checkpoint.CheckpointError as error:
        raise RunError(str(error)) from error
    if step is None:
        every = getattr(settings, "checkpoint_every", None)
        raise RunError(
            f"{directory} has no complete checkpoint yet; train longer "
            f"(checkpoint_every={every}) or resume it"
        )
    return RunContext(
        directory=directory,
        kind=saved["kind"],
        algo=algo,
        algo_config=algo_config,
        settings=settings,
        seeds=seeds,
        preprocessor=jax.tree_util.tree_map(jnp.asarray, restored["preprocessor"]),
        states=restored["states"],
        keys=restored["keys"],
        step=int(restored["step"]),
        observation_dim=obs_dim,
        action_dim=act_dim,
        env_id=saved.get("env_id"),
        config=saved,
    )


# ------------------------------------------------------------------ wall time
def logged_wall(records: list[dict]) -> float | None:
    """The largest ``time/wall_seconds`` of ``records`` (0 when nothing was logged;
    ``None`` when records exist but none carries the total)."""
    if not records:
        return 0.0
    walls = [
        r["time/wall_seconds"]
        for r in records
        if isinstance(r.get("time/wall_seconds"), int | float)
    ]
    return max(walls) if walls else None


def total_wall(wall_before: float | None, elapsed: float) -> float | None:
    """Wall seconds of the whole run: earlier processes' plus this one's ``elapsed``
    (None if an earlier process did not record its time)."""
    return None if wall_before is None else wall_before + elapsed


# ------------------------------------------------------------------ evaluations
def sample_std(values) -> float | None:
    """The sample standard deviation (``ddof=1``); ``None`` for fewer than two values."""
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else None


def mean_std(mean: float | None, std: float | None) -> str:
    """``"m ± s"`` for tables (``"m"`` when there is no spread, ``"-"`` without a mean)."""
    if mean is None:
        return "-"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def evaluation_record(step: int, result: EvaluationResult) -> dict:
    """The one shape of an evaluation: per-seed means of ``result``'s episodes."""
    record = {
        "step": int(step),
        "episodes": int(result.returns.shape[1]),
        "return_per_seed": result.returns.mean(axis=1).tolist(),
        "length_mean": float(result.lengths.mean()),
    }
    if result.normalized is not None:
        record["normalized_per_seed"] = result.normalized.mean(axis=1).tolist()
    safety = result.safety()
    if safety is not None:
        record["violation_rate_per_seed"] = safety["violation_rate_per_seed"]
        record["episodes_with_violation_per_seed"] = safety["episodes_with_violation_per_seed"]
    record.update(result.cost_summary() or {})
    return record


def scores(record: dict) -> list[float]:
    """Per-seed scores of an evaluation: normalized where the task has references."""
    return record.get("normalized_per_seed", record["return_per_seed"])


def evaluation_metrics(record: dict, prefix: str = "eval") -> dict:
    """An evaluation record as ``metrics.jsonl`` entries (spreads across seeds are
    sample standard deviations)."""
    returns = record["return_per_seed"]
    metrics = {
        f"{prefix}/return_mean": float(np.mean(returns)),
        f"{prefix}/return_std": sample_std(returns),
        f"{prefix}/length_mean": record["length_mean"],
        f"{prefix}/return_per_seed": returns,
        f"{prefix}/episodes": record["episodes"],
    }
    if "normalized_per_seed" in record:
        metrics[f"{prefix}/normalized_score"] = float(np.mean(record["normalized_per_seed"]))
        metrics[f"{prefix}/normalized_per_seed"] = record["normalized_per_seed"]
    if "violation_rate_per_seed" in record:
        metrics[f"{prefix}/violation_rate"] = float(np.mean(record["violation_rate_per_seed"]))
        metrics[f"{prefix}/violation_rate_per_seed"] = record["violation_rate_per_seed"]
        metrics[f"{prefix}/episodes_with_violation"] = float(
            np.mean(record["episodes_with_violation_per_seed"])
        )
        metrics[f"{prefix}/episodes_with_violation_per_seed"] = record[
            "episodes_with_violation_per_seed"
        ]
    for name in ("cost", "within_budget"):
        if f"{name}_per_seed" in record:
            metrics[f"{prefix}/{name}"] = float(np.mean(record[f"{name}_per_seed"]))
            metrics[f"{prefix}/{name}_per_seed"] = record[f"{name}_per_seed"]
    return metrics


def evaluations_from_metrics(records: list[dict], prefix: str = "eval") -> list[dict]:
    """The evaluation records logged in ``metrics.jsonl`` (for a resumed run)."""
    out = []
    for metrics in records:
        if f"{prefix}/return_per_seed" not in metrics:
            continue
        record = {
            "step": metrics["step"],
            "episodes": metrics.get(f"{prefix}/episodes"),
            "return_per_seed": metrics[f"{prefix}/return_per_seed"],
            "length_mean": metrics.get(f"{prefix}/length_mean"),
        }
        for name in (
            "normalized",
            "violation_rate",
            "episodes_with_violation",
            "cost",
            "within_budget",
        ):
            if f"{prefix}/{name}_per_seed" in metrics:
                record[f"{name}_per_seed"] = metrics[f"{prefix}/{name}_per_seed"]
        out.append(record)
    return out


def run_evaluation(policy, states, pre, env_id: str, num_seeds: int, episodes: int, seed: int):
    """``evaluate`` of a stacked ``states`` through ``policy`` (``build_policy``)."""
    return evaluate(
        bind_policy(policy, states, pre),
        env_id,
        num_seeds=num_seeds,
        num_episodes=episodes,
        seed=seed,
        max_parallel=min(episodes, 50),
    )


def periodic_evaluation(
    policy, states, pre, env_id: str, episodes: int, step: int, evaluations: list, best: BestPolicy
) -> dict:
    """One periodic evaluation (reset seeds ``PERIODIC_SEED..``) of every seed: its
    record appended to ``evaluations``, ``best`` updated; returns the metrics to log."""
    num_seeds = len(best.scores)
    result = run_evaluation(policy, states, pre, env_id, num_seeds, episodes, PERIODIC_SEED)
    record = evaluation_record(step, result)
    evaluations.append(record)
    best.update(states, scores(record), step)
    return evaluation_metrics(record)


def heldout_evaluation(
    policy, final_states, best: BestPolicy, pre, env_id: str, episodes: int, step: int
) -> dict:
    """The final (at ``step``) and the best policies on ``episodes`` held-out episodes
    per seed (reset seeds ``HELDOUT_SEED..``), as evaluation records. When every seed's
    best is its final state, the best's record is the final's (not measured twice)."""
    num_seeds = len(best.scores)

    def measure(states):
        result = run_evaluation(policy, states, pre, env_id, num_seeds, episodes, HELDOUT_SEED)
        return evaluation_record(step, result)

    out = {"reset_seeds": f"{HELDOUT_SEED}..{HELDOUT_SEED + episodes - 1}"}
    out["final"] = measure(final_states)
    if (best.steps >= 0).all():
        out["best"] = out["final"] if (best.steps == step).all() else measure(best.states)
        out["best_step_per_seed"] = best.steps.tolist()
    return out


def score_summary(evaluations: list[dict], heldout: dict | None) -> dict:
    """Summary fields of a run's scores.

    ``final_*`` and ``best_*`` are on the held-out episodes when there are any
    (``scores_on: "heldout"``), else the periodic evaluations' (``"periodic"``:
    the best is then the maximum over the same episodes it was chosen on, biased
    up). ``periodic_*`` always hold the evaluations' own numbers. Spreads are
    sample standard deviations across seeds (``None`` with one seed).
    """
    if not evaluations:
        return {}
    table = np.asarray([scores(e) for e in evaluations], np.float64)  # [E, S]
    out = {
        "score": "normalized" if "normalized_per_seed" in evaluations[-1] else "return",
        "std": "sample standard deviation across seeds (ddof=1)",
        "periodic_final_per_seed": table[-1].tolist(),
        "periodic_best_per_seed": table.max(axis=0).tolist(),
        "evaluations": evaluations,
    }
    if heldout is not None:
        out["scores_on"] = "heldout"
        out["heldout"] = heldout
        final = scores(heldout["final"])
        best = scores(heldout["best"]) if "best" in heldout else None
        out["final_return_per_seed"] = heldout["final"]["return_per_seed"]
        if "violation_rate_per_seed" in heldout["final"]:
            out["final_violation_rate_per_seed"] = heldout["final"]["violation_rate_per_seed"]
        for name in ("cost", "within_budget"):
            if f"{name}_per_seed" in heldout["final"]:
                out[f"final_{name}_per_seed"] = heldout["final"][f"{name}_per_seed"]
    else:
        out["scores_on"] = "periodic"
        final, best = table[-1].tolist(), table.max(axis=0).tolist()
        out["final_return_per_seed"] = evaluations[-1]["return_per_seed"]
        if "violation_rate_per_seed" in evaluations[-1]:
            out["final_violation_rate_per_seed"] = evaluations[-1]["violation_rate_per_seed"]
    for name, values in (("final", final), ("best", best)):
        if values is None:
            continue
        out[f"{name}_per_seed"] = list(values)
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_std"] = sample_std(values)
    return out


def write_summary(run_dir: pathlib.Path, summary: dict) -> None:
    write_json_atomic(run_dir / "summary.json", summary)


# ------------------------------------------------------------------ logging
def open_logger(run_dir: pathlib.Path, options: RunOptions, resolved: dict) -> MultiLogger:
    """``metrics.jsonl`` and the loggers ``options`` ask for, for any kind of run."""
    loggers = [JsonlLogger(run_dir / "metrics.jsonl")]
    if options.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    if options.wandb_project:
        from offrl.run.loggers import WandbLogger  # imports wandb: only when asked

        loggers.append(WandbLogger(options.wandb_project, run_dir.name, resolved, run_dir))
    if options.mlflow_experiment:
        from offrl.run.loggers import MlflowLogger

        loggers.append(
            MlflowLogger(
                options.mlflow_experiment,
                run_dir.name,
                {"algorithm": resolved["algorithm"], **resolved["algorithm_config"]},
            )
        )
    return MultiLogger(loggers)


def _format_metrics(metrics: dict, keys=("critic/loss", "actor/loss", "value/loss")) -> str:
    parts = [
        f"{k.split('/')[0]} {metrics[f'train/{k}']:.3g}"
        for k in keys
        if isinstance(metrics.get(f"train/{k}"), float) and np.isfinite(metrics[f"train/{k}"])
    ]
    return "  ".join(parts)


class Progress:
    """A rich progress bar on a terminal; elsewhere (logs, CI) a plain line on stderr
    at most every ``every_seconds`` and at every evaluation."""

    def __init__(
        self,
        enabled: bool,
        total: int,
        start: int,
        label: str,
        unit: str = "upd/s",
        every_seconds: float = 30.0,
    ):
        tty = sys.stderr.isatty()
        self.bar, self.lines = enabled and tty, enabled and not tty
        self.total, self.start, self.label, self.unit = total, start, label, unit
        self.last_eval = ""
        self.every_seconds = every_seconds
        self._last_line = time.perf_counter()
        if self.bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[speed]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self._task = self._progress.add_task(
                label, total=total, completed=start, speed="", info=""
            )

    def __enter__(self):
        if self.bar:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self._progress.__exit__(*exc)

    def update(self, step: int, record: dict) -> None:
        if not (self.bar or self.lines):
            return
        if "eval/normalized_score" in record:
            self.last_eval = f"eval {record['eval/normalized_score']:.1f} (norm.)"
        elif "eval/return_mean" in record:
            self.last_eval = f"eval {record['eval/return_mean']:.1f}"
        rate = record.get("time/updates_per_second", record.get("time/steps_per_second", 0))
        speed = f"{rate:.0f} {self.unit}"
        info = f"{_format_metrics(record)}  {self.last_eval}"
        if self.bar:
            self._progress.update(self._task, completed=step, speed=speed, info=info)
            return
        now = time.perf_counter()
        evaluated = any(k.startswith("eval/") for k in record)
        if evaluated or now - self._last_line >= self.every_seconds or step >= self.total:
            self._last_line = now
            print(
                f"[{self.label}] {step}/{self.total}  {speed}  {info}".rstrip(),
                file=sys.stderr,
                flush=True,
            )
