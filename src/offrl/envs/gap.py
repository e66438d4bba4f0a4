"""Simulators with a dynamics gap: the same task with changed physics (H2O's setting).

An environment id ``BASE@name=value,...`` is ``BASE`` with its physics changed:

- ``gravity=k``: gravity times ``k`` (MuJoCo's ``model.opt.gravity``;
  Pendulum's ``g``);
- ``friction=k``: every geom's sliding friction times ``k`` (MuJoCo only).

``Hopper-v5@gravity=2`` is H2O's "doubled gravity" simulator of the real
``Hopper-v5``. Rewards, observations, actions and the time limit are the base
task's, so data, policies and normalized scores carry over unchanged. The same
``@`` list also takes the observation and action modifiers of
:mod:`offrl.envs.partial` (``novel``, ``delay=k``, ``wind=s``), which change the
observation or the applied action but keep the rewards, time limit and normalized
scores.
"""

from __future__ import annotations

import gymnasium as gym

from offrl.envs import partial

PARAMETERS = ("gravity", "friction")
#: Every name an ``@`` list may hold: the physics here, the observation and action
#: modifiers of :mod:`offrl.envs.partial` (``novel`` takes no value).
NAMES = PARAMETERS + partial.MODIFIERS


def parse(env_id: str) -> tuple[str, dict[str, float]]:
    """``("Hopper-v5", {"gravity": 2.0})`` from ``"Hopper-v5@gravity=2"``
    (``novel`` alone reads as ``novel=1``)."""
    if "@" not in env_id:
        return env_id, {}
    base, _, spec = env_id.partition("@")
    changes: dict[str, float] = {}
    for part in filter(None, spec.split(",")):
        name, equals, value = part.partition("=")
        if name == "novel" and not equals:
            value, equals = "1", "="
        if not equals or name not in NAMES:
            raise ValueError(
                f"bad change {part!r} in {env_id!r}: write name=value with name in "
                f"{', '.join(PARAMETERS)} (e.g. Hopper-v5@gravity=2,friction=0.5), or novel "
                "(velocities hidden), delay=k (actions k steps late) or wind=s (a random "
                "action offset per episode)"
            )
        try:
            changes[name] = float(value)
        except ValueError as error:
            raise ValueError(f"{part!r} in {env_id!r}: {value!r} is not a number") from error
    return base, changes


def apply(env: gym.Env, changes: dict[str, float], env_id: str = "") -> gym.Env:
    """Change ``env``'s physics in place (it keeps the change across resets), then wrap
    it with the modifiers of :mod:`offrl.envs.partial` among ``changes``."""
    inner = env.unwrapped
    model = getattr(inner, "model", None)
    for name, factor in changes.items():
        if name in partial.MODIFIERS:
            continue
        if name == "gravity" and model is not None and hasattr(model, "opt"):
            model.opt.gravity[:] = model.opt.gravity * factor
        elif name == "gravity" and hasattr(inner, "g"):
            inner.g = inner.g * factor
        elif name == "friction" and model is not None and hasattr(model, "geom_friction"):
            model.geom_friction[:, 0] = model.geom_friction[:, 0] * factor
        else:
            raise ValueError(
                f"{type(inner).__name__} has no {name} to change; gravity works for MuJoCo "
                "tasks and Pendulum, friction for MuJoCo tasks"
            )
    return partial.apply(env, env_id, changes)
