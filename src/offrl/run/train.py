"""An offline training run: run directory, loop, evaluation, checkpoints, resume.

Layout of a run directory::

    config.json       the resolved configuration (algorithm, training, dataset)
    metrics.jsonl     one JSON object per logged step (train/, valid/, eval/)
    checkpoints/      step_<N>/ written atomically with Orbax
    tensorboard/      event files (with --tensorboard)
    summary.json      final and best evaluation per seed, timings

``resume=True`` continues from the last complete checkpoint and reaches the
same parameters as an uninterrupted run (bitwise on CPU): the checkpoint holds
the train states and the trainer's sampling keys, and the scan length is a
function of the configuration.
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

from offrl.core import registry
from offrl.core.trainer import (
    Preprocessor,
    apply_preprocessor,
    build_chunk,
    build_policy,
    build_validation,
    chunk_length,
    fill_run_length,
    fit_preprocessor,
    init_states,
    resolve_reward_scaling,
    seed_keys,
)
from offrl.data.dataset import Dataset, split_by_episode
from offrl.data.loading import load_dataset
from offrl.envs.registry import EnvError, check_env_id
from offrl.run import checkpoint
from offrl.run.interrupt import RunInterrupted, StopRequest
from offrl.run.loggers import JsonlLogger, MultiLogger, TensorBoardLogger, truncate_jsonl


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train (independent of the algorithm)."""

    steps: int = 1_000_000
    """Gradient updates per seed (D4RL's protocol is 1M)."""
    batch_size: int = 256
    """Transitions per update."""
    steps_per_call: int = 1000
    """Updates fused into one jitted lax.scan call (the host syncs once per call)."""
    eval_every: int = 10_000
    """Evaluate in the environment every this many updates (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation and seed."""
    checkpoint_every: int = 50_000
    """Write a checkpoint every this many updates (and always at the end)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds trained in parallel under jax.vmap, e.g. --seeds 0 1 2 3."""
    normalize_observations: bool = True
    """Standardize observations with the training data's mean and std."""
    reward_scaling: str = "auto"
    """auto, none, locomotion, antmaze or standardize. auto: the algorithm's default
    for the dataset's task (IQL: locomotion on MuJoCo locomotion tasks, else none)."""
    validation_fraction: float = 0.0
    """Fraction of episodes held out; their losses are logged as valid/* at each evaluation."""
    env_id: str | None = None
    """Evaluation environment; defaults to the dataset's."""
    tensorboard: bool = False
    """Also write TensorBoard event files."""
    wandb_project: str | None = None
    """Also log to this W&B project (offline mode unless WANDB_MODE is set)."""
    mlflow_experiment: str | None = None
    """Also log to this MLflow experiment."""
    progress: bool = True
    """Show a progress bar."""

    def check(self) -> None:
        """Raise :class:`RunError` naming the first invalid setting (before anything is
        written)."""
        check_positive(
            steps=self.steps,
            batch_size=self.batch_size,
            steps_per_call=self.steps_per_call,
            eval_episodes=self.eval_episodes,
            checkpoint_every=self.checkpoint_every,
        )
        check_non_negative(eval_every=self.eval_every)
        check_seeds(self.seeds)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise RunError(
                f"--validation-fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.reward_scaling not in REWARD_SCALINGS:
            raise RunError(
                f"--reward-scaling must be one of {', '.join(REWARD_SCALINGS)}, "
                f"got {self.reward_scaling!r}"
            )


REWARD_SCALINGS = ("auto", "none", "locomotion", "antmaze", "standardize")


class RunError(RuntimeError):
    """A run that cannot start or resume as asked."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_positive(**values) -> None:
    """Raise :class:`RunError` for the first value that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RunError(f"{_flag(name)} must be a positive integer, got {value!r}")


def check_non_negative(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RunError(f"{_flag(name)} must be 0 or a positive integer, got {value!r}")


def check_seeds(seeds) -> None:
    """Seeds: at least one, integers, no repeats (a repeat would be reported as a
    second independent seed)."""
    seeds = tuple(seeds)
    if not seeds:
        raise RunError("--seeds is empty; pass at least one seed, e.g. --seeds 0,1,2")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise RunError(f"--seeds must be integers, got {list(seeds)}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise RunError(
            f"--seeds repeats {', '.join(map(str, repeated))}; each seed must be distinct "
            "(a repeated seed is the same run twice, not a new sample)"
        )


@dataclasses.dataclass
class RunContext:
    """What a loaded run holds: enough to act, evaluate or continue."""

    directory: pathlib.Path
    algo: ModuleType
    algo_config: object
    train_config: TrainConfig
    preprocessor: Preprocessor
    states: object
    keys: jax.Array
    step: int
    observation_dim: int
    action_dim: int
    env_id: str | None


def _to_jsonable(value):
    if dataclasses.is_dataclass(value):
        return {k: _to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def _from_dict(cls, data, source: str = "config.json"):
    """``cls(**data)`` with lists turned back into tuples; a :class:`RunError` naming
    ``source`` for anything of the wrong shape."""
    if not isinstance(data, dict):
        raise RunError(
            f"{source}: expected an object of {cls.__name__} settings, got "
            f"{type(data).__name__}; the file was edited or damaged: restore it or start a "
            "new run"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise RunError(
            f"{source} has unknown {cls.__module__}.{cls.__name__} fields "
            f"{sorted(unknown)}; it was written by another offrl version"
        )
    defaults = cls()
    kwargs = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if isinstance(value, list) and (isinstance(default, tuple) or name in ("seeds",)):
            value = tuple(value)
        if default is not None and value is not None and not _same_kind(default, value):
            raise RunError(
                f"{source}: {cls.__name__}.{name} is {value!r} ({type(value).__name__}), "
                f"expected a {type(default).__name__} like the default {default!r}; the file "
                "was edited or damaged: restore it or start a new run"
            )
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise RunError(f"{source}: invalid {cls.__name__} settings ({error})") from error


def _same_kind(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) == isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return isinstance(value, tuple)
    return isinstance(value, type(default))


def read_run_config(directory: pathlib.Path) -> dict:
    """``config.json`` of a run directory as a dict, or a one-line :class:`RunError`
    naming the file."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise RunError(
            f"{directory} is not a run directory (no config.json); "
            "pass the directory that `offrl train` created"
        )
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(
            f"{config_path} is not valid JSON ({error}); restore it from a copy or retrain"
        ) from error
    if not isinstance(saved, dict):
        raise RunError(f"{config_path} holds a {type(saved).__name__}, not a run configuration")
    required = {
        "algorithm": str,
        "algorithm_config": dict,
        "train_config": dict,
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
    if saved["observation_dim"] < 1 or saved["action_dim"] < 1:
        raise RunError(f"{config_path}: observation_dim and action_dim must be positive")
    env_id = saved.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        raise RunError(f"{config_path}: 'env_id' is {env_id!r}, not a string")
    return saved


def write_json_atomic(path: pathlib.Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _payload(states, keys, step: int, pre: Preprocessor):
    return {"states": states, "keys": keys, "step": np.int32(step), "preprocessor": pre}


def parse_run_config(directory: pathlib.Path):
    """``(saved, algo, algo_config, train_config)`` from a run's ``config.json``, each
    shape checked; a one-line :class:`RunError` naming the file otherwise."""
    saved = read_run_config(directory)
    config_path = directory / "config.json"
    try:
        algo = registry.get(saved["algorithm"])
    except KeyError as error:
        raise RunError(f"{config_path}: {error.args[0]}") from error
    algo_config = _from_dict(algo.Config, saved["algorithm_config"], f"{config_path}")
    train_config = _from_dict(TrainConfig, saved["train_config"], f"{config_path}")
    try:
        check_seeds(train_config.seeds)
    except RunError as error:
        raise RunError(f"{config_path}: {error}") from error
    return saved, algo, algo_config, train_config


def load_run(directory: str | os.PathLike, step: int | None = None) -> RunContext:
    """Load a run directory's configuration and a checkpoint (the latest by default)."""
    directory = pathlib.Path(directory)
    saved, algo, algo_config, train_config = parse_run_config(directory)
    obs_dim, act_dim = saved["observation_dim"], saved["action_dim"]
    ckpt_dir = directory / "checkpoints"
    init_keys, trainer_keys = seed_keys(train_config.seeds)
    template_states = init_states(algo, algo_config, obs_dim, act_dim, init_keys)
    template = _payload(template_states, trainer_keys, 0, Preprocessor.identity(obs_dim, act_dim))
    try:
        if step is None:
            step, restored = checkpoint.restore_latest(ckpt_dir, template)
        else:
            restored = checkpoint.restore(ckpt_dir, step, template)
    except checkpoint.CheckpointError as error:
        raise RunError(str(error)) from error
    if step is None:
        raise RunError(
            f"{directory} has no complete checkpoint yet; train longer "
            f"(checkpoint_every={train_config.checkpoint_every}) or resume it"
        )
    return RunContext(
        directory=directory,
        algo=algo,
        algo_config=algo_config,
        train_config=train_config,
        preprocessor=jax.tree_util.tree_map(jnp.asarray, restored["preprocessor"]),
        states=restored["states"],
        keys=restored["keys"],
        step=int(restored["step"]),
        observation_dim=obs_dim,
        action_dim=act_dim,
        env_id=saved.get("env_id"),
    )


def _format_metrics(metrics: dict[str, float], keys=("critic/loss", "actor/loss", "value/loss")):
    parts = [
        f"{k.split('/')[0]} {metrics[f'train/{k}']:.3g}"
        for k in keys
        if f"train/{k}" in metrics and np.isfinite(metrics[f"train/{k}"])
    ]
    return "  ".join(parts)


def _seed_means(metrics: dict[str, jax.Array], prefix: str) -> dict[str, float]:
    out = {}
    for name, values in metrics.items():
        values = np.asarray(values, np.float64)
        out[f"{prefix}/{name}"] = (
            float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        )
    return out


def train(
    algorithm: str,
    dataset: str | Dataset,
    run_dir: str | os.PathLike,
    algo_config=None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict:
    """Train ``algorithm`` on ``dataset`` for every seed; returns the summary.

    Args:
        algorithm: a registered name (``bc``, ``td3_bc``, ``iql``, ``cql``).
        dataset: a :class:`Dataset` or anything :func:`offrl.data.load_dataset` takes.
        run_dir: the run directory (created; must not exist unless resuming).
        algo_config: the algorithm's ``Config`` (its defaults when ``None``).
        train_config: a :class:`TrainConfig` (defaults when ``None``).
        resume: continue the run in ``run_dir`` from its last checkpoint.
        stop_after: stop once this many updates are done, with a checkpoint, as if
            interrupted (for time-boxed jobs); continue later with ``resume=True``.
    """
    try:
        algo = registry.get(algorithm)
    except KeyError as error:
        raise RunError(error.args[0]) from error
    algorithm = algorithm.replace("-", "_")
    train_config = train_config or TrainConfig()
    train_config.check()
    if stop_after is not None:
        check_positive(stop_after=stop_after)
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / "config.json"
    if resume and not config_path.is_file():
        raise RunError(
            f"cannot resume: {run_dir} has no config.json; start a new run without --resume"
        )
    if not resume and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunError(
            f"{run_dir} already exists and is not empty; pass --resume to continue "
            "it, or choose another --run-dir (nothing was overwritten)"
        )
    dataset_spec = (
        dataset if isinstance(dataset, str) else (dataset.info.source or dataset.info.name)
    )
    data = (
        load_dataset(dataset, env_id=train_config.env_id)
        if isinstance(dataset, str | os.PathLike)
        else dataset
    )
    missing = [f for f in getattr(algo, "REQUIRED_FIELDS", ()) if getattr(data, f) is None]
    if missing:
        raise RunError(
            f"{algorithm} needs the dataset field(s) {', '.join(missing)}, which "
            f"{dataset_spec} does not have. Record them with the data (a safety margin h(s) "
            "per step: infos['margin'] in Minari, a 'margins' array in a D4RL-style HDF5 file), or "
            "build a safety dataset such as suite:pointrobot-mixed; nothing was written"
        )
    algo_config = fill_run_length(algo_config or algo.Config(), train_config.steps)
    if not isinstance(algo_config, algo.Config):
        raise RunError(
            f"algo_config is a {type(algo_config).__name__}, expected {algo.__name__}.Config"
        )
    env_id = train_config.env_id or data.info.env_id
    eval_env_id = env_id  # None: no evaluations in an environment
    if env_id is not None:
        try:
            check_env_id(env_id)
        except EnvError as error:
            if train_config.env_id:
                raise RunError(f"--env-id: {error}") from error
            print(
                f"warning: the dataset names an environment offrl will not create ({error}); "
                "training without evaluations in an environment (pass --env-id ENV to "
                "evaluate)",
                file=sys.stderr,
                flush=True,
            )
            eval_env_id = None

    resolved = {
        "algorithm": algorithm,
        "algorithm_config": _to_jsonable(algo_config),
        "train_config": _to_jsonable(train_config),
        "dataset": str(dataset_spec),
        "dataset_name": data.info.name,
        "env_id": env_id,
        "observation_dim": data.observation_dim,
        "action_dim": data.action_dim,
        "dataset_sha256": data.digest(),
    }
    if resume:
        saved = parse_run_config(run_dir)[0]
        compare = {k: v for k, v in resolved.items()}
        compare["train_config"] = {
            k: v for k, v in resolved["train_config"].items() if k != "progress"
        }
        saved_cmp = dict(saved)
        saved_cmp["train_config"] = {
            k: v for k, v in saved["train_config"].items() if k != "progress"
        }
        saved_cmp.pop("offrl_version", None)
        saved_cmp.pop("command", None)
        differences = sorted(k for k in compare if compare[k] != saved_cmp.get(k))
        if differences:
            detail = "; ".join(
                f"{k}: saved {saved_cmp.get(k)!r} != now {compare[k]!r}" for k in differences
            )
            raise RunError(
                f"cannot resume {run_dir}: the configuration differs ({detail}). "
                "Resume with the original arguments, or start a new run directory"
            )

    # ---- data: split, preprocess, move to the device
    validation: Dataset | None = None
    train_data = data
    if train_config.validation_fraction > 0:
        train_data, validation = split_by_episode(data, train_config.validation_fraction, seed=0)
    reward_scaling = resolve_reward_scaling(algo, train_config.reward_scaling, env_id)
    pre = fit_preprocessor(train_data, train_config.normalize_observations, reward_scaling)
    prepare = getattr(algo, "prepare_dataset", lambda d, c: d)  # e.g. Cal-QL's returns-to-go
    device_data = prepare(apply_preprocessor(train_data, pre), algo_config).to_device()
    device_valid = (
        prepare(apply_preprocessor(validation, pre), algo_config).to_device()
        if validation
        else None
    )
    pre = jax.tree_util.tree_map(jnp.asarray, pre)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        from offrl import __version__

        resolved["offrl_version"] = __version__
        resolved["command"] = " ".join(sys.argv)
        resolved["reward_scaling"] = reward_scaling
        write_json_atomic(config_path, resolved)

    # ---- state
    seeds = tuple(train_config.seeds)
    init_keys, trainer_keys = seed_keys(seeds)
    states = init_states(algo, algo_config, data.observation_dim, data.action_dim, init_keys)
    start_step = 0
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    # Wall time before this process (None: an earlier process did not record it).
    wall_before = 0.0
    previous: list[dict] = []
    if resume:
        template = _payload(states, trainer_keys, 0, pre)
        try:
            last, restored = checkpoint.restore_latest(ckpt_dir, template)
        except checkpoint.CheckpointError as error:
            raise RunError(str(error)) from error
        if last is not None:
            states, trainer_keys = restored["states"], restored["keys"]
            start_step = int(restored["step"])
        # Every logged second counts, also those of work after the last checkpoint
        # that this process repeats.
        records = truncate_jsonl(metrics_path, start_step)
        wall_before = logged_wall(records)
        if wall_before is None and not start_step:
            wall_before = 0.0
        previous = [r for r in records if r["step"] <= start_step]

    length = chunk_length(
        train_config.steps,
        train_config.steps_per_call,
        train_config.eval_every,
        train_config.checkpoint_every,
    )
    chunk = build_chunk(algo, algo_config, train_config.batch_size, length)
    validate_fn = (
        build_validation(algo, algo_config, train_config.batch_size)
        if device_valid is not None
        else None
    )
    policy = build_policy(algo)

    loggers = [JsonlLogger(metrics_path)]
    if train_config.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    if train_config.wandb_project:
        from offrl.run.loggers import WandbLogger

        loggers.append(WandbLogger(train_config.wandb_project, run_dir.name, resolved, run_dir))
    if train_config.mlflow_experiment:
        from offrl.run.loggers import MlflowLogger

        loggers.append(
            MlflowLogger(
                train_config.mlflow_experiment,
                run_dir.name,
                {"algorithm": algorithm, **resolved["algorithm_config"]},
            )
        )
    logger = MultiLogger(loggers)

    evaluations = _previous_evaluations(previous)

    def run_evaluation(step: int) -> dict:
        from offrl.evaluate.rollout import evaluate

        if eval_env_id is None:
            return {}
        result = evaluate(
            lambda obs, key: policy(states, pre, jnp.asarray(obs), key),
            eval_env_id,
            num_seeds=len(seeds),
            num_episodes=train_config.eval_episodes,
        )
        record = {"step": step, "return_per_seed": result.returns.mean(axis=1).tolist()}
        metrics = {
            "eval/return_mean": float(result.returns.mean()),
            "eval/return_std": float(result.returns.mean(axis=1).std()),
            "eval/length_mean": float(result.lengths.mean()),
            "eval/return_per_seed": record["return_per_seed"],
        }
        if result.normalized is not None:
            record["normalized_per_seed"] = result.normalized.mean(axis=1).tolist()
            metrics["eval/normalized_score"] = float(result.normalized.mean())
            metrics["eval/normalized_per_seed"] = record["normalized_per_seed"]
        safety = result.safety()
        if safety is not None:
            record["violation_rate_per_seed"] = safety["violation_rate_per_seed"]
            metrics["eval/violation_rate"] = safety["violation_rate"]
            metrics["eval/episodes_with_violation"] = safety["episodes_with_violation"]
            metrics["eval/violation_rate_per_seed"] = safety["violation_rate_per_seed"]
        evaluations.append(record)
        return metrics

    progress = _Progress(
        train_config.progress and sys.stderr.isatty(),
        train_config.steps,
        start_step,
        f"{algorithm} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})",
        lines=train_config.progress and not sys.stderr.isatty(),
    )
    step = start_step
    saved_step = start_step if start_step else None  # the step of the newest checkpoint
    started = time.perf_counter()
    compile_seconds = None
    interrupted = False
    stop = StopRequest("the current chunk of updates")
    valid_key = jax.random.PRNGKey(12345)

    def save() -> None:
        nonlocal saved_step
        if saved_step != step:
            checkpoint.save(ckpt_dir, step, _payload(states, trainer_keys, step, pre))
            saved_step = step

    try:
        with progress, stop:
            while step < train_config.steps:
                call_start = time.perf_counter()
                # states, keys and step move together: a signal only sets stop.signum.
                states, trainer_keys, metrics = chunk(states, trainer_keys, device_data)
                jax.block_until_ready(states)
                if compile_seconds is None:
                    compile_seconds = time.perf_counter() - call_start
                step += length
                record = _seed_means(metrics, "train")
                record["time/updates_per_second"] = length / (time.perf_counter() - call_start)
                if wall_before is not None:
                    record["time/wall_seconds"] = total_wall(
                        wall_before, time.perf_counter() - started
                    )
                if (
                    train_config.eval_every
                    and step % train_config.eval_every == 0
                    or step == train_config.steps
                ):
                    if validate_fn is not None:
                        valid_key, key = jax.random.split(valid_key)
                        valid = validate_fn(states, jax.random.split(key, len(seeds)), device_valid)
                        record.update(_seed_means(valid, "valid"))
                    record.update(run_evaluation(step))
                logger.log(step, record)
                progress.update(step, record)
                if step % train_config.checkpoint_every == 0 or step == train_config.steps:
                    save()
                if step < train_config.steps and (
                    stop.requested or (stop_after is not None and step >= stop_after)
                ):
                    save()
                    interrupted = True
                    break
    finally:
        logger.close()

    elapsed = time.perf_counter() - started
    total = total_wall(wall_before, elapsed)
    summary = _summary(
        algorithm, seeds, evaluations, step, elapsed, total, compile_seconds, start_step
    )
    summary["interrupted"] = interrupted
    write_json_atomic(run_dir / "summary.json", summary)
    if interrupted and stop.requested:
        raise RunInterrupted(
            f"stopped at step {step} with a checkpoint; continue with --resume --run-dir {run_dir}",
            stop.signum,
        )
    return summary


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


def _previous_evaluations(records: list[dict]) -> list[dict]:
    out = []
    for record in records:
        if "eval/return_per_seed" in record:
            entry = {"step": record["step"], "return_per_seed": record["eval/return_per_seed"]}
            if "eval/normalized_per_seed" in record:
                entry["normalized_per_seed"] = record["eval/normalized_per_seed"]
            if "eval/violation_rate_per_seed" in record:
                entry["violation_rate_per_seed"] = record["eval/violation_rate_per_seed"]
            out.append(entry)
    return out


def _summary(
    algorithm, seeds, evaluations, step, elapsed, total, compile_seconds, start_step
) -> dict:
    summary = {
        "algorithm": algorithm,
        "seeds": list(seeds),
        "steps": step,
        "wall_seconds": total,  # across resumes; None if an earlier process did not log it
        "wall_seconds_this_process": elapsed,
        "resumed_at_step": start_step,
        "compile_seconds": compile_seconds,
        "updates_per_second_per_seed": (step - start_step) / elapsed if elapsed else None,
    }
    if evaluations:
        key = (
            "normalized_per_seed" if "normalized_per_seed" in evaluations[-1] else "return_per_seed"
        )
        table = np.asarray([e[key] for e in evaluations])  # [evals, S]
        summary["score"] = "normalized" if key == "normalized_per_seed" else "return"
        summary["final_per_seed"] = table[-1].tolist()
        summary["best_per_seed"] = table.max(axis=0).tolist()
        summary["final_mean"] = float(table[-1].mean())
        summary["final_std"] = float(table[-1].std())
        summary["best_mean"] = float(table.max(axis=0).mean())
        summary["best_std"] = float(table.max(axis=0).std())
        summary["final_return_per_seed"] = evaluations[-1]["return_per_seed"]
        if "violation_rate_per_seed" in evaluations[-1]:
            summary["final_violation_rate_per_seed"] = evaluations[-1]["violation_rate_per_seed"]
        summary["evaluations"] = evaluations
    return summary


class _Progress:
    """A rich progress bar with updates/s, losses and the last evaluation."""

    def __init__(
        self,
        enabled: bool,
        total: int,
        start: int,
        label: str,
        unit: str = "upd/s",
        lines: bool = False,
        every_seconds: float = 30.0,
    ):
        """``enabled``: a live bar (a terminal). ``lines``: instead, a plain line on
        stderr at most every ``every_seconds`` and at every evaluation (logs, CI)."""
        self.enabled = enabled
        self.total, self.start, self.label, self.unit = total, start, label, unit
        self.last_eval = ""
        self.lines, self.every_seconds = lines and not enabled, every_seconds
        self._last_line = time.perf_counter()
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
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
        if self.enabled:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._progress.__exit__(*exc)

    def update(self, step: int, record: dict) -> None:
        if "eval/normalized_score" in record:
            self.last_eval = f"eval {record['eval/normalized_score']:.1f} (norm.)"
        elif "eval/return_mean" in record:
            self.last_eval = f"eval {record['eval/return_mean']:.1f}"
        rate = record.get("time/updates_per_second", record.get("time/steps_per_second", 0))
        speed = f"{rate:.0f} {self.unit}"
        info = f"{_format_metrics(record)}  {self.last_eval}"
        if self.enabled:
            self._progress.update(self._task, completed=step, speed=speed, info=info)
        elif self.lines:
            now = time.perf_counter()
            evaluated = any(k.startswith("eval/") for k in record)
            if evaluated or now - self._last_line >= self.every_seconds or step >= self.total:
                self._last_line = now
                print(
                    f"[{self.label}] {step}/{self.total}  {speed}  {info}".rstrip(),
                    file=sys.stderr,
                    flush=True,
                )
