"""Branched model rollouts kept in an on-device buffer, for model-based training.

OfflineRL-Kit (MOPO, MOBILE) rolls the policy out every 1,000 updates from 50,000
data states for ``h`` model steps, drops a rollout at its first termination, and
keeps the last 5 such batches (``50,000 x h x 5`` rows) in a model buffer; each
update then draws 95% of its batch from that buffer and 5% from the data.

offrl spreads the same work over every update, which keeps one update one pure
function (seeds under ``vmap`` cannot branch on "every 1,000th update" without
running both branches): each update rolls out from ``rollout_batch_size /
rollout_freq`` data states of its batch (50) for ``h`` steps and writes the rows
that precede a termination into a ring buffer of the same capacity. The model data
per update, its age in the buffer (up to ``5 x 1,000`` updates) and the start-state
distribution (uniform over the data) are OfflineRL-Kit's; the policy that rolls out
is at most one update old instead of up to 1,000. Before the first update the
buffer is filled by one full-size rollout (the released step-0 rollout).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from offrl.model import ensemble as ens

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations")


@struct.dataclass
class ModelBuffer:
    """A ring buffer of model transitions; ``count`` is how many valid rows were ever
    written (the newest at ``(count - 1) % capacity``)."""

    observations: jax.Array  # [C, D]
    actions: jax.Array  # [C, A]
    rewards: jax.Array  # [C]
    next_observations: jax.Array  # [C, D]
    terminations: jax.Array  # [C] float32
    count: jax.Array  # int32 scalar

    @property
    def capacity(self) -> int:
        return self.rewards.shape[-1]


def empty(capacity: int, observation_dim: int, action_dim: int) -> ModelBuffer:
    return ModelBuffer(
        observations=jnp.zeros((capacity, observation_dim), jnp.float32),
        actions=jnp.zeros((capacity, action_dim), jnp.float32),
        rewards=jnp.zeros((capacity,), jnp.float32),
        next_observations=jnp.zeros((capacity, observation_dim), jnp.float32),
        terminations=jnp.zeros((capacity,), jnp.float32),
        count=jnp.zeros((), jnp.int32),
    )


def add(buffer: ModelBuffer, rows: dict, valid: jax.Array) -> ModelBuffer:
    """Write the ``valid`` rows of ``rows`` (``M`` each, ``M`` below the capacity).

    The valid rows go first (a stable order), all ``M`` are written at the ring's
    head and ``count`` grows by the number valid: the invalid tail sits in the
    ``M`` slots after the head, which :func:`sample` never reads and the next write
    overwrites."""
    order = jnp.argsort(~valid, stable=True)
    slots = (buffer.count + jnp.arange(valid.shape[0])) % buffer.capacity
    updated = {
        name: getattr(buffer, name).at[slots].set(rows[name][order].astype(jnp.float32))
        for name in FIELDS
    }
    return buffer.replace(**updated, count=buffer.count + valid.sum().astype(jnp.int32))


def sample(buffer: ModelBuffer, key: jax.Array, size: int, reserved: int) -> dict:
    """``size`` rows drawn uniformly from the valid ones: the first ``count`` while the
    buffer is filling, then all but the ``reserved`` slots after the head (the last
    write's invalid tail, :func:`add`)."""
    capacity = buffer.capacity
    full = buffer.count >= capacity
    start = jnp.where(full, (buffer.count + reserved) % capacity, 0)
    span = jnp.where(full, capacity - reserved, jnp.maximum(buffer.count, 1))
    rows = (start + jax.random.randint(key, (size,), 0, span)) % capacity
    return {name: getattr(buffer, name)[rows] for name in FIELDS}


def rollout(
    spec: ens.ModelSpec,
    ensemble: ens.Ensemble,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    starts: jax.Array,
    horizon: int,
    key: jax.Array,
    terminated: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    penalty_kind: str = "aleatoric",
    penalty_coef: float = 0.0,
):
    """Roll ``act(observations, key)`` out in the model from ``starts [R, D]`` for
    ``horizon`` steps. Returns ``(rows, valid, info)``: ``rows`` (:data:`FIELDS`,
    ``[h R, ...]`` step-major) with rewards lowered by ``penalty_coef * u(s, a)``
    (MOPO; 0 for MOBILE, whose penalty is in its critic target), ``valid`` false for
    the steps after a rollout's termination, and ``info`` (means over valid rows of
    the raw reward, the penalty and the termination rate)."""

    def one_step(carry, step_key):
        observations, alive = carry
        act_key, model_key = jax.random.split(step_key)
        actions = act(observations, act_key)
        next_obs, rewards, mean, std, draw = ens.step(
            spec, ensemble, observations, actions, model_key
        )
        u = ens.penalty(penalty_kind, mean, std, draw) if penalty_coef else jnp.zeros_like(rewards)
        done = terminated(observations, actions, next_obs)
        row = {
            "observations": observations,
            "actions": actions,
            "rewards": rewards - penalty_coef * u,
            "next_observations": next_obs,
            "terminations": done.astype(jnp.float32),
        }
        return (next_obs, alive & ~done), (row, alive, rewards, u)

    alive = jnp.ones(starts.shape[0], bool)
    keys = jax.random.split(key, horizon)
    _, (rows, valid, raw, u) = jax.lax.scan(one_step, (starts, alive), keys)
    rows = {k: v.reshape(-1, *v.shape[2:]) for k, v in rows.items()}
    valid = valid.reshape(-1)
    weight = valid.astype(jnp.float32)
    count = jnp.maximum(weight.sum(), 1.0)
    info = {
        "rollout/reward": (raw.reshape(-1) * weight).sum() / count,
        "rollout/penalty": (u.reshape(-1) * weight).sum() / count,
        "rollout/termination_rate": (rows["terminations"] * weight).sum() / count,
        "rollout/valid_fraction": weight.mean(),
    }
    return rows, valid, info


def score_policies(
    spec: ens.ModelSpec,
    ensemble: ens.Ensemble,
    act: Callable[[jax.Array], jax.Array],
    q_value: Callable[[jax.Array, jax.Array], jax.Array],
    starts: jax.Array,
    horizon: int,
    discount: float,
    key: jax.Array,
    terminated: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
) -> dict:
    """Roll ``P`` deterministic policies out in the model and score them (model-based
    OPE; :mod:`offrl.evaluate.model_ope` explains the scores).

    ``act(observations [P, B, D]) -> actions [P, B, A]``; ``q_value(observations
    [P, B, D], actions [P, B, A]) -> [P, B]`` (a critic, e.g. the behavior's);
    ``starts [P, B, D]``. Row ``b`` of every policy draws the same model noise and
    elite (common random numbers), so the scores differ by the policies alone. A
    rollout ends at ``terminated``. Returns ``[P]`` arrays: ``amq`` (Uni-O4's AM-Q,
    the mean of ``q_value`` over alive steps), ``model_value`` (the discounted model
    return plus ``gamma^H q_value`` at the last state, while alive), ``model_return``
    (the discounted model return alone) and ``alive_steps`` (mean steps alive)."""
    batch = starts.shape[1]

    def one_step(carry, step_key):
        observations, alive, weight = carry
        actions = act(observations)
        q = q_value(observations, actions)
        next_obs, rewards = jax.vmap(lambda o, a: ens.step(spec, ensemble, o, a, step_key)[:2])(
            observations, actions
        )
        done = terminated(observations, actions, next_obs)
        alive_f = alive.astype(jnp.float32)
        out = (q * alive_f, alive_f, weight * rewards * alive_f)
        return (next_obs, alive & ~done, weight * discount), out

    alive = jnp.ones(starts.shape[:2], bool)
    keys = jax.random.split(key, horizon)
    (last, alive, weight), (q, counted, rewards) = jax.lax.scan(
        one_step, (starts, alive, jnp.ones(())), keys
    )
    tail = q_value(last, act(last)) * alive * weight
    steps = counted.sum(axis=(0, 2))
    discounted = rewards.sum(axis=0)
    return {
        "amq": q.sum(axis=(0, 2)) / jnp.maximum(steps, 1.0),
        "model_value": (discounted + tail).mean(axis=-1),
        "model_return": discounted.mean(axis=-1),
        "alive_steps": steps / batch,
    }
