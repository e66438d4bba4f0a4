"""An offline training run: the loop, its evaluations, checkpoints and resume.

The run directory (layout, ``config.json``, checkpoint payload, evaluation
records, summary) is :mod:`offrl.run.rundir`'s. ``resume=True`` continues from
the last complete checkpoint and reaches the same parameters as an
uninterrupted run (bitwise on CPU): the checkpoint holds the train states and
the trainer's sampling keys, and the scan length is a function of the
configuration.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.core import registry
from offrl.core.trainer import (
    build_chunk,
    build_policy,
    build_validation,
    chunk_length,
    fill_from_data,
    fill_run_length,
    init_states,
    resolve_reward_scaling,
    seed_keys,
    seed_means,
)
from offrl.data.dataset import LABEL_FIELDS, Dataset, split_by_episode
from offrl.data.loading import load_dataset
from offrl.data.preprocess import apply_preprocessor, fit_preprocessor
from offrl.data.weights import read_weights
from offrl.envs.registry import EnvError, check_env_id
from offrl.run import checkpoint, rundir
from offrl.run.interrupt import RunInterrupted, StopRequest
from offrl.run.loggers import truncate_jsonl
from offrl.run.rundir import RunContext, load_run  # noqa: F401  (offrl.run.train's API)
from offrl.run.settings import (  # noqa: F401  (offrl.run.train's API)
    RunError,
    TrainConfig,
    check_positive,
    to_jsonable,
)


def training_data(data: Dataset, config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """``(train, validation)`` as ``config`` chooses them from the whole ``data``: its
    weights file attached, the ``filter_key`` subset (or every episode outside the
    ``validation_key`` subset), the ``validation_key`` subset or a random
    ``validation_fraction`` of episodes (``None`` when neither is set)."""
    if config.weights:
        data = read_weights(config.weights, data)
    try:
        valid_ids = data.subset_episodes(config.validation_key) if config.validation_key else None
        train_ids = data.subset_episodes(config.filter_key) if config.filter_key else None
    except KeyError as error:
        raise RunError(error.args[0]) from error
    if valid_ids is not None:
        if train_ids is None:
            train_ids = np.setdiff1d(np.arange(data.num_episodes), valid_ids)
        shared = np.intersect1d(train_ids, valid_ids)
        if shared.size:
            raise RunError(
                f"--validation-key {config.validation_key} shares {shared.size} episode(s) with "
                f"the training episodes ({config.filter_key or 'the rest'}); choose disjoint "
                "subsets"
            )
        if train_ids.size == 0 or valid_ids.size == 0:
            raise RunError(
                f"--validation-key {config.validation_key} leaves "
                f"{train_ids.size} training and {valid_ids.size} validation episodes; each "
                "needs at least one"
            )
        return data.select_episodes(train_ids), data.select_episodes(valid_ids)
    if train_ids is not None:
        if train_ids.size == 0:
            raise RunError(f"--filter-key {config.filter_key} holds no episode")
        data = data.subset(config.filter_key)
    if config.validation_fraction > 0:
        try:
            return split_by_episode(data, config.validation_fraction, seed=0)
        except ValueError as error:
            raise RunError(f"--validation-fraction: {error}") from error
    return data, None


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
    rundir.check_new_or_resumable(run_dir, resume)
    dataset_spec = (
        dataset if isinstance(dataset, str) else (dataset.info.source or dataset.info.name)
    )
    data = (
        load_dataset(dataset, env_id=train_config.env_id)
        if isinstance(dataset, str | os.PathLike)
        else dataset
    )
    needed = registry.required_fields(algo)
    # A log without actions or rewards: one line naming the labeling command.
    data.require([f for f in needed if f in LABEL_FIELDS], f"training {algorithm}")
    missing = [f for f in needed if getattr(data, f) is None]
    if missing:
        raise RunError(
            f"{algorithm} needs the dataset field(s) {', '.join(missing)}, which "
            f"{dataset_spec} does not have. Record them with the data (a safety margin h(s) "
            "per step: infos['margin'] in Minari, a 'margins' array in a D4RL-style HDF5 file), or "
            "build a safety dataset such as suite:pointrobot-mixed; nothing was written"
        )
    if train_config.weights and not getattr(algo, "USES_WEIGHTS", False):
        takes = [n for n in registry.names() if getattr(registry.get(n), "USES_WEIGHTS", False)]
        raise RunError(
            f"{algorithm} takes no per-sample weights (no loss of it regresses onto the "
            f"data's actions); --weights works with {', '.join(takes)}. Nothing was written"
        )
    algo_config = fill_run_length(algo_config or algo.Config(), train_config.steps)
    try:
        # DT's target return, MOPO's termination
        algo_config = fill_from_data(algo_config, data, train_config.env_id)
    except ValueError as error:
        raise RunError(f"{error}; nothing was written") from error
    if type(algo_config) is not algo.Config:  # Cal-QL's Config is a CQL Config too
        raise RunError(
            f"algo_config is a {type(algo_config).__name__}, expected {algo.__name__}.Config"
        )
    env_id = train_config.env_id or data.info.env_id
    eval_env_id = env_id if train_config.evaluate else None  # None: no evaluations
    if eval_env_id is not None:
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

    seeds = tuple(train_config.seeds)
    resolved = {
        "kind": getattr(algo, "RUN_KIND", "offline"),
        "algorithm": algorithm,
        "algorithm_config": to_jsonable(algo_config),
        "train_config": to_jsonable(train_config),
        "seeds": list(seeds),
        "dataset": str(dataset_spec),
        "dataset_name": data.info.name,
        "env_id": env_id,
        "observation_dim": data.observation_dim,
        "action_dim": data.action_dim,
        "dataset_sha256": data.digest(),
    }

    # ---- data: weights, subsets, split, preprocess, move to the device
    train_data, validation = training_data(data, train_config)
    if train_config.weights or train_config.filter_key or train_config.validation_key:
        # A resume must find the same subset and weights (the files may have changed).
        resolved["training_data_sha256"] = train_data.digest()
    reward_scaling = resolve_reward_scaling(algo, train_config.reward_scaling, env_id)
    resolved["reward_scaling"] = reward_scaling
    # checked before anything is written
    source = _init_source(train_config.init_from, algorithm, algo, algo_config, seeds, data)
    rundir.open_run(run_dir, resolved, resume)
    pre = (
        source.preprocessor
        if source is not None
        else fit_preprocessor(train_data, train_config.normalize_observations, reward_scaling)
    )
    prepare = getattr(algo, "prepare_dataset", lambda d, c: d)  # e.g. Cal-QL's returns-to-go
    device_data = prepare(apply_preprocessor(train_data, pre), algo_config).to_device()
    device_valid = (
        prepare(apply_preprocessor(validation, pre), algo_config).to_device()
        if validation
        else None
    )
    pre = jax.tree_util.tree_map(jnp.asarray, pre)

    # ---- state
    init_keys, trainer_keys = seed_keys(seeds)
    states = init_states(algo, algo_config, data.observation_dim, data.action_dim, init_keys)
    if hasattr(algo, "load_pretrained"):  # e.g. IQL from a value pre-training
        states = algo.load_pretrained(states, algo_config, pre)
    if source is not None:
        states = source.states
    best = rundir.BestPolicy(states, len(seeds))
    start_step = 0
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    # Wall time before this process (None: an earlier process did not record it).
    wall_before = 0.0
    previous: list[dict] = []
    if resume:
        template = rundir.payload(states, trainer_keys, 0, pre, best.state_dict())
        last, restored = rundir.restore_latest(ckpt_dir, template)
        if last is not None:
            states, trainer_keys = restored["states"], restored["keys"]
            start_step = int(restored["step"])
            best.load(restored.get("best"))
        # Every logged second counts, also those of work after the last checkpoint
        # that this process repeats.
        records = truncate_jsonl(metrics_path, start_step)
        wall_before = rundir.logged_wall(records)
        if wall_before is None and not start_step:
            wall_before = 0.0
        previous = [r for r in records if r["step"] <= start_step]
    pretrained = None
    if start_step == 0 and hasattr(algo, "pretrain"):  # e.g. MOPO's dynamics fit
        states, pretrained = algo.pretrain(
            states, algo_config, device_data, pre, init_keys, log=_pretrain_log(train_config)
        )
        rundir.write_json_atomic(run_dir / "pretrain.json", pretrained)

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
    policy = build_policy(algo, algo_config)
    logger = rundir.open_logger(run_dir, train_config, resolved)
    evaluations = rundir.evaluations_from_metrics(previous)

    progress = rundir.Progress(
        train_config.progress,
        train_config.steps,
        start_step,
        f"{algorithm} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})",
    )
    step = start_step
    saved_step = start_step if start_step else None  # the step of the newest checkpoint
    started = time.perf_counter()
    compile_seconds = None
    interrupted = False
    stop = StopRequest("the current chunk of updates")
    valid_key = jax.random.PRNGKey(12345)
    heldout = None  # the final and best policies on held-out episodes, at the last step

    def save() -> None:
        nonlocal saved_step
        if saved_step != step:
            checkpoint.save(
                ckpt_dir, step, rundir.payload(states, trainer_keys, step, pre, best.state_dict())
            )
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
                record = seed_means(metrics, "train")
                record["time/updates_per_second"] = length / (time.perf_counter() - call_start)
                if wall_before is not None:
                    record["time/wall_seconds"] = rundir.total_wall(
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
                        record.update(seed_means(valid, "valid"))
                    if eval_env_id is not None:
                        record.update(
                            rundir.periodic_evaluation(
                                policy,
                                states,
                                pre,
                                eval_env_id,
                                train_config.eval_episodes,
                                step,
                                evaluations,
                                best,
                            )  # fmt: skip
                        )
                if step == train_config.steps and eval_env_id and train_config.heldout_episodes:
                    heldout = rundir.heldout_evaluation(
                        policy, states, best, pre, eval_env_id, train_config.heldout_episodes, step
                    )
                    record.update(rundir.evaluation_metrics(heldout["final"], "heldout/final"))
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
    summary = {
        "kind": resolved["kind"],
        "algorithm": algorithm,
        "seeds": list(seeds),
        "steps": step,
        "wall_seconds": rundir.total_wall(wall_before, elapsed),  # across resumes
        "wall_seconds_this_process": elapsed,
        "resumed_at_step": start_step,
        "compile_seconds": compile_seconds,
        "updates_per_second_per_seed": (step - start_step) / elapsed if elapsed else None,
        "interrupted": interrupted,
        **rundir.score_summary(evaluations, heldout),
    }
    if pretrained is not None:
        summary["pretrain"] = pretrained
    rundir.write_summary(run_dir, summary)
    if interrupted and stop.requested:
        raise RunInterrupted(
            f"stopped at step {step} with a checkpoint; continue with --resume --run-dir {run_dir}",
            stop.signum,
        )
    return summary


def _init_source(init_from, algorithm: str, algo, algo_config, seeds, data: Dataset):
    """The run ``--init-from`` names, loaded and checked against this run (or None)."""
    if init_from is None:
        return None
    source = rundir.load_run(init_from)
    saved = rundir.read_run_config(init_from)
    problems = []
    if saved.get("algorithm") != algorithm:
        problems.append(f"it trained {saved.get('algorithm')}, not {algorithm}")
    if len(source.seeds) != len(seeds):
        problems.append(f"it has {len(source.seeds)} seed(s), this run {len(seeds)}")
    if (source.observation_dim, source.action_dim) != (data.observation_dim, data.action_dim):
        problems.append(
            f"its observations and actions are {source.observation_dim}- and "
            f"{source.action_dim}-dimensional, the data's {data.observation_dim} and "
            f"{data.action_dim}"
        )
    if not problems:
        template = init_states(
            algo, algo_config, data.observation_dim, data.action_dim, seed_keys(seeds)[0]
        )
        if jax.tree_util.tree_structure(template) != jax.tree_util.tree_structure(
            source.states
        ) or jax.tree_util.tree_map(jnp.shape, template) != jax.tree_util.tree_map(
            jnp.shape, source.states
        ):
            problems.append("its networks differ from this run's (other algorithm settings)")
    if problems:
        raise RunError(f"--init-from {init_from}: {'; '.join(problems)}; nothing was written")
    return source


def _pretrain_log(train_config: TrainConfig):
    """Progress lines of the fits before training (a dynamics model's epochs, Uni-O4's
    value, critic and BC updates; the keys name the fit) on stderr, when the run shows
    progress."""
    if not train_config.progress:
        return None

    def log(epoch: int, values: dict) -> None:
        parts = [f"{k} {np.mean(v):.4g}" for k, v in values.items()]
        print(f"pretrain {epoch}: {', '.join(parts)}", file=sys.stderr, flush=True)

    return log


def train_or_reuse(
    algorithm: str, dataset: str, run_dir: str | os.PathLike, algo_config, train_config
) -> dict:
    """The summary of a finished run in ``run_dir`` with ``train_config.steps`` updates,
    else the run trained (resumed from its last checkpoint where it has one; a run
    directory with no checkpoint yet holds nothing to keep and starts over). What
    ``offrl bench`` cells and ``offrl sweep`` trials do, so an interrupted
    benchmark or sweep continues where it stopped."""
    import json
    import shutil

    run_dir = pathlib.Path(run_dir)
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("steps") == train_config.steps and not summary.get("interrupted"):
            return summary
    started = (run_dir / "config.json").exists()
    resume = started and checkpoint.latest(run_dir / "checkpoints") is not None
    if started and not resume:
        shutil.rmtree(run_dir)
    return train(algorithm, dataset, run_dir, algo_config, train_config=train_config, resume=resume)
