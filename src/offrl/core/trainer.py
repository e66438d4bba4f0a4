"""The training core: preprocessing, scan-fused updates, seeds under vmap.

One jitted call runs ``lax.scan`` over ``length`` updates, each on a batch
sampled on the device from the device-resident dataset, and returns the
metrics averaged inside the scan; the host syncs once per call. Seeds run in
parallel: every leaf of the train state and of the trainer key has a leading
seed axis, and the call is ``jax.vmap``-ed over it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data.dataset import Dataset, sample
from offrl.data.normalization import is_locomotion_task
from offrl.data.preprocess import Preprocessor
from offrl.data.windows import sample_windows
from offrl.envs import termination


def resolve_reward_scaling(algo: ModuleType, reward_scaling: str, env_id: str | None) -> str:
    """The scaling ``"auto"`` stands for: the algorithm's default, for this task.

    IQL's ``locomotion`` scaling is the D4RL locomotion recipe. As in the IQL
    paper, CORL and d3rlpy's reproduction scripts it applies only to datasets
    of the MuJoCo locomotion tasks; anything else (mazes, Pendulum, a user's
    logs) keeps its rewards. On our sparse PointMaze UMaze the locomotion
    scaling (x111 there) cost offline IQL most of its score: 30.5 against 77.7
    unscaled at 10k updates. An explicit scaling is always used as given.
    """
    if reward_scaling != "auto":
        return reward_scaling
    default = algo.DEFAULT_REWARD_SCALING
    if default == "locomotion" and not is_locomotion_task(env_id):
        return "none"
    return default


def fill_run_length(config, total_steps: int):
    """Set schedule lengths left as ``None`` (e.g. IQL's ``decay_steps``) to the run length."""
    if hasattr(config, "decay_steps") and config.decay_steps is None:
        return dataclasses.replace(config, decay_steps=total_steps)
    return config


def fill_from_data(config, dataset: Dataset, env_id: str | None = None):
    """Set settings that the data decides: a return-conditioned policy's
    ``target_return`` left as ``None`` becomes the best episode return in the (raw)
    training data; a model-based method's ``termination`` left as ``"auto"`` becomes the
    task's own rule (:mod:`offrl.envs.termination`), or ``"never"`` for an unknown task
    whose data never terminates. Raises ``ValueError`` for an unknown task whose data
    does terminate (a model's rollouts would not know where to stop). ``env_id``: the
    task when it is not the one the dataset records (``--env-id``)."""
    if getattr(config, "target_return", 0.0) is None:
        best = float(np.max(dataset.episode_returns()))
        config = dataclasses.replace(config, target_return=best)
    if getattr(config, "termination", None) == "auto":
        env_id = env_id or dataset.info.env_id
        terminates = bool(np.any(np.asarray(dataset.terminations)))
        config = dataclasses.replace(
            config, termination=termination.resolve("auto", env_id, terminates)
        )
    return config


def window_length(algo: ModuleType, config) -> int | None:
    """The number of steps a sequence algorithm learns from and acts on (its module's
    ``window_length(config)``), or ``None`` for an algorithm of single transitions."""
    length = getattr(algo, "window_length", None)
    return None if length is None else int(length(config))


def history_length(algo: ModuleType, config) -> int | None:
    """The number of steps a policy acts on (its module's ``history_length(config)``:
    ``act`` reads a window of the episode so far, kept by :mod:`offrl.core.history`),
    or ``None`` for a policy of the current observation."""
    length = getattr(algo, "history_length", None)
    return None if length is None else int(length(config))


def batch_sampler(algo: ModuleType, config) -> Callable:
    """``(dataset, key, batch_size) -> batch``: the algorithm's own ``sample_batch``
    when it has one, else transitions, or windows of :func:`window_length` steps
    (:func:`offrl.data.windows.sample_windows`)."""
    own = getattr(algo, "sample_batch", None)
    if own is not None:
        return lambda dataset, key, batch_size: own(dataset, key, batch_size, config)
    length = window_length(algo, config)
    if length is None:
        return sample
    return lambda dataset, key, batch_size: sample_windows(dataset, key, batch_size, length)


def example_batch(observation_dim: int, action_dim: int) -> dict[str, jax.Array]:
    """A one-row batch of the right shapes, for ``init``."""
    return {
        "observations": jnp.zeros((1, observation_dim), jnp.float32),
        "actions": jnp.zeros((1, action_dim), jnp.float32),
        "rewards": jnp.zeros((1,), jnp.float32),
        "next_observations": jnp.zeros((1, observation_dim), jnp.float32),
        "terminations": jnp.zeros((1,), jnp.float32),
        "truncations": jnp.zeros((1,), jnp.float32),
    }


def seed_keys(seeds: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Per-seed ``(init_keys, trainer_keys)``, each ``[S, 2]``."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    split = jax.vmap(jax.random.split)(keys)  # [S, 2, 2]
    return split[:, 0], split[:, 1]


def init_states(
    algo: ModuleType, config, observation_dim: int, action_dim: int, init_keys: jax.Array
):
    """The algorithm's state for every seed, stacked on a leading axis.

    Runs eagerly under vmap: compiling ``init`` costs seconds on CPU (threefry
    initialisers) and it runs once per run.
    """
    batch = example_batch(observation_dim, action_dim)
    return jax.vmap(lambda k: algo.init(config, batch, k))(init_keys)


def _as_float_batch(batch):
    out = dict(batch)
    for name in ("terminations", "truncations"):
        out[name] = batch[name].astype(jnp.float32)
    return out


def masked_sums(metrics: dict[str, jax.Array]) -> tuple[dict, dict]:
    """``(sums, counts)`` of one update's metrics, each masked by its group's
    ``_valid/<group>`` flag (an actor metric counts only where the actor was updated).

    The one way offrl averages metrics: add sums and counts over updates, then
    :func:`finish_means`.
    """
    sums, counts = {}, {}
    for name, value in metrics.items():
        if name.startswith("_"):
            continue
        weight = metrics.get(f"_valid/{name.split('/', 1)[0]}", jnp.float32(1.0))
        weight = jnp.asarray(weight, jnp.float32)
        sums[name] = weight * jnp.asarray(value, jnp.float32)
        counts[name] = weight
    return sums, counts


def finish_means(sums: dict, counts: dict) -> dict:
    """Means of :func:`masked_sums` totals; NaN where nothing counted."""
    return {
        k: jnp.where(counts[k] > 0, sums[k] / jnp.maximum(counts[k], 1.0), jnp.nan) for k in sums
    }


def seed_means(metrics: dict, prefix: str) -> dict[str, float]:
    """Per-seed metric means (``[S]`` each) as one logged value each: the mean over
    the seeds that have one (NaN when none has)."""
    out = {}
    for name, values in metrics.items():
        values = np.asarray(values, np.float64)
        out[f"{prefix}/{name}"] = (
            float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        )
    return out


@functools.lru_cache(maxsize=64)
def build_chunk(
    algo: ModuleType, config, batch_size: int, length: int, jit: bool = True
) -> Callable:
    """``(states, keys, dataset) -> (states, keys, metrics)`` for ``length`` updates.

    Cached, so equal arguments share one compiled function.

    ``states`` and ``keys`` carry a leading seed axis; ``metrics`` are each seed's
    means over the ``length`` updates (``[S]`` per metric).
    """

    draw = batch_sampler(algo, config)

    def one_seed(state, key, dataset: Dataset):
        def step(state, key):
            key, batch_key = jax.random.split(key)
            batch = _as_float_batch(draw(dataset, batch_key, batch_size))
            state, metrics = algo.update(state, batch, config)
            return state, key, metrics

        metric_shapes = jax.eval_shape(step, state, key)[2]
        zeros = {k: jnp.zeros((), jnp.float32) for k in metric_shapes if not k.startswith("_")}

        def body(carry, _):
            state, key, sums, counts = carry
            state, key, metrics = step(state, key)
            add, seen = masked_sums(metrics)
            sums = {k: sums[k] + add[k] for k in sums}
            counts = {k: counts[k] + seen[k] for k in counts}
            return (state, key, sums, counts), None

        (state, key, sums, counts), _ = jax.lax.scan(
            body, (state, key, zeros, dict(zeros)), None, length=length
        )
        return state, key, finish_means(sums, counts)

    chunk = jax.vmap(one_seed, in_axes=(0, 0, None))
    return jax.jit(chunk) if jit else chunk


@functools.lru_cache(maxsize=64)
def build_validation(algo: ModuleType, config, batch_size: int) -> Callable:
    """Metrics of one update on a held-out batch (the state is discarded), ``[S]`` each."""

    draw = batch_sampler(algo, config)

    def one_seed(state, key, dataset: Dataset):
        batch = _as_float_batch(draw(dataset, key, batch_size))
        _, metrics = algo.update(state, batch, config)
        return {k: v for k, v in metrics.items() if not k.startswith("_")}

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, None)))


def act_in_env(
    algo: ModuleType, config, state, pre: Preprocessor, observations, key, deterministic: bool
):
    """One seed's actions in environment units for observations ``[N, obs_dim]`` in
    environment units (or a window, see :func:`build_policy`): the preprocessor, the
    algorithm's ``act`` and the action bounds. The one place a policy's inputs and
    outputs are mapped; evaluation and the exported ONNX graph (:mod:`offrl.export`)
    both call it."""
    if isinstance(observations, dict):
        window = dict(observations)
        window["observations"] = pre.observation(window["observations"])
        window["actions"] = jnp.clip(pre.action_from_env(window["actions"]), -1.0, 1.0)
        if "prompt_observations" in window:  # Meta-DT's prompt, in environment units
            window["prompt_observations"] = pre.observation(window["prompt_observations"])
            window["prompt_actions"] = jnp.clip(
                pre.action_from_env(window["prompt_actions"]), -1.0, 1.0
            )
        actions = algo.act(state, window, key, deterministic, config)
    else:
        actions = algo.act(state, pre.observation(observations), key, deterministic, config)
    return pre.action_to_env(jnp.clip(actions, -1.0, 1.0))


@functools.lru_cache(maxsize=64)
def build_policy(algo: ModuleType, config, deterministic: bool = True) -> Callable:
    """Jitted batched act (with the algorithm's ``config``) in environment units for
    all seeds. Cached, so equal arguments share one compiled function.

    ``(states, preprocessor, observations[S, N, obs_dim], key) -> actions[S, N, act_dim]``

    For a policy over histories (:func:`history_length`) ``observations`` is a window
    (:func:`offrl.core.history.HistoryPolicy` keeps it): a dict of ``observations
    [S, N, K, obs_dim]`` and ``actions [S, N, K, act_dim]`` in environment units,
    ``returns_to_go``, ``timesteps`` and ``mask`` ``[S, N, K]``; the action is the
    one for the window's last real step.
    """

    def one_seed(state, pre: Preprocessor, observations, key):
        return act_in_env(algo, config, state, pre, observations, key, deterministic)

    def policy(states, pre, observations, key):
        num_seeds = jax.tree_util.tree_leaves(observations)[0].shape[0]
        keys = jax.random.split(key, num_seeds)
        return jax.vmap(one_seed, in_axes=(0, None, 0, 0))(states, pre, observations, keys)

    jitted = jax.jit(policy)
    length = history_length(algo, config)
    if length is None:
        return jitted

    def windowed(states, pre, window, key):
        return jitted(states, pre, window, key)

    # What offrl.core.history.bind_policy needs to keep the history.
    windowed.window_length = length
    windowed.target_return = getattr(config, "target_return", None)
    return windowed


def chunk_length(total_steps: int, steps_per_call: int, *intervals: int) -> int:
    """The scan length: ``steps_per_call`` reduced so every interval is a multiple of it."""
    length = math.gcd(steps_per_call, total_steps)
    for interval in intervals:
        if interval > 0:
            length = math.gcd(length, interval)
    return max(1, length)
