"""The tasks' own termination rules, written as array functions for learned models.

A model-based method rolls a policy out in a learned dynamics model; its rollouts
must end where the real task ends. d3rlpy's MOPO scored under 7 on hopper-medium
until its rollouts ended at Hopper's true termination (d3rlpy issue 101), and
OfflineRL-Kit ships a termination function per task for this reason. These are
Gymnasium's v5 rules on the observation (raw units, not standardized):

- Hopper: healthy while ``z > 0.7``, ``|angle| < 0.2`` and every other
  observation entry lies in ``(-100, 100)``.
- Walker2d: healthy while ``0.8 < z < 2.0`` and ``-1 < angle < 1``.
- HalfCheetah, Pendulum, the continuing PointMaze tasks and the point robot never
  terminate (their episodes end by the time limit only).

:func:`rule_name` gives ``None`` for a task it does not know; the trainer then
decides from the data (:func:`offrl.core.trainer.fill_from_data`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

#: ``(observations, actions, next_observations) -> terminated [B]`` in raw units.
TerminationFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def never(observations, actions, next_observations) -> jax.Array:
    """A task whose episodes end only at the time limit."""
    return jnp.zeros(next_observations.shape[:-1], bool)


def hopper(observations, actions, next_observations) -> jax.Array:
    z, angle = next_observations[..., 0], next_observations[..., 1]
    healthy = (
        jnp.all(jnp.isfinite(next_observations), axis=-1)
        & jnp.all(jnp.abs(next_observations[..., 1:]) < 100.0, axis=-1)
        & (z > 0.7)
        & (jnp.abs(angle) < 0.2)
    )
    return ~healthy


def walker2d(observations, actions, next_observations) -> jax.Array:
    z, angle = next_observations[..., 0], next_observations[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~(healthy & jnp.all(jnp.isfinite(next_observations), axis=-1))


#: The rules by name (a model-based algorithm's ``termination`` setting).
RULES: dict[str, TerminationFn] = {"never": never, "hopper": hopper, "walker2d": walker2d}

_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("Hopper-", "hopper"),
    ("offrl/HopperVelocity-", "hopper"),
    ("Walker2d-", "walker2d"),
    ("offrl/Walker2dVelocity-", "walker2d"),
    ("HalfCheetah-", "never"),
    ("offrl/HalfCheetahVelocity-", "never"),
    ("Pendulum-", "never"),
    ("PointMaze_", "never"),
    ("offrl/PointRobot-", "never"),
)


def rule_name(env_id: str | None) -> str | None:
    """The name in :data:`RULES` of the task's termination rule for a Gymnasium id
    (``Hopper-v5``, also with offrl's ``@`` variants, whose observations keep the
    position entries first), or ``None`` when offrl does not know the task."""
    if not env_id:
        return None
    base = env_id.split("@", 1)[0]
    for prefix, name in _BY_PREFIX:
        if base.startswith(prefix):
            return name
    return None


def resolve(name: str, env_id: str | None, data_terminates: bool) -> str:
    """A ``termination`` setting made concrete: ``"auto"`` becomes the task's own rule,
    or ``"never"`` for a task offrl does not know whose data never terminates; any
    other name must be one of :data:`RULES`. Raises ``ValueError`` (one line, naming
    the fix) for an unknown task whose data does terminate: a model's rollouts would
    not know where to stop."""
    if name != "auto":
        if name not in RULES:
            raise ValueError(
                f"unknown termination rule '{name}'; choose auto or one of {', '.join(RULES)}"
            )
        return name
    rule = rule_name(env_id)
    if rule is not None:
        return rule
    if data_terminates:
        raise ValueError(
            f"offrl does not know where the task {env_id or '(none recorded)'} "
            "terminates and the data has terminations, so model rollouts would not "
            "know where to stop; pass --termination never (rollouts run their full "
            f"length) or one of {', '.join(RULES)}"
        )
    return "never"
