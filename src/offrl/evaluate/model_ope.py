"""Model-based off-policy evaluation: Uni-O4's AM-Q and the model's discounted value.

Two pieces are fit to the data once, whatever the number of policies:

- a dynamics ensemble (:mod:`offrl.model.ensemble`: OfflineRL-Kit's 7 Gaussian
  models, 5 held-out elites);
- the behavior critic ``Q_beta`` by SARSA: FQE (:mod:`offrl.evaluate.fqe`) whose
  next action is the data's own next action (:func:`offrl.data.returns.next_actions`).

Each policy is then rolled out in the model from the same ``starts`` data states
(drawn once) for ``horizon`` steps with its deterministic action; a model step
draws from one elite chosen per row (as MOPO's rollouts), with the same random
numbers for every policy, and the task's own termination rule
(:mod:`offrl.envs.termination`) ends a rollout. Two scores come from one rollout:

``amq``          Uni-O4's AM-Q (``dynamics_eval.rollout`` in Lei-Kun/Uni-O4): the
                 mean of ``Q_beta(s_t, pi(s_t))`` over every step where a rollout is
                 still alive. Uni-O4 rolls 512 states for up to 1000 steps; the
                 default here is 100 steps (``horizon``), which a 2-core CPU affords
                 for a few dozen checkpoints.
``model_value``  the model's discounted return with the critic as its tail:
                 ``mean_b [sum_{t<H} gamma^t r_t + gamma^H Q_beta(s_H, pi(s_H))]``,
                 rewards and the tail counted while the rollout is alive (an
                 estimate of the policy's value from data states, in reward units).

Both use ``Q_beta``, the behavior policy's critic, not the evaluated policy's:
that is Uni-O4's choice (one critic for every candidate, so no per-policy fit) and
its bias: ``Q_beta(s, pi(s))`` is a one-step improvement of the behavior's value,
not the policy's. FQE fits one critic per policy instead; docs/benchmarks.md
compares the two as checkpoint selectors.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data.dataset import Dataset
from offrl.data.returns import next_actions
from offrl.envs import termination
from offrl.evaluate.fqe import FittedQ, FQEConfig, fqe
from offrl.model import ensemble as ens
from offrl.model import rollouts

#: ``policy(*policy_args, observations[P, B, D], key) -> actions[P, B, A]`` in
#: environment units, jittable (``offrl.core.trainer.build_policy``'s signature with
#: ``policy_args = (states, preprocessor)``).
BatchedPolicy = Callable[..., jax.Array]

SCORES = ("amq", "model_value")


@dataclasses.dataclass(frozen=True)
class ModelOPEConfig:
    """Model-based OPE settings."""

    horizon: int = 100
    """Model steps per rollout (Uni-O4: up to 1000)."""
    starts: int = 512
    """Data states each policy's rollouts start from (Uni-O4: 512)."""
    discount: float = 0.99
    """Discount of ``model_value`` and of the SARSA critic."""
    termination: str = "auto"
    """Where rollouts end: auto (the task's own rule) or one of
    offrl.envs.termination.RULES."""
    seed: int = 0
    """Seed of the model's fit, the critic's fit, the start states and the model noise."""
    model: ens.ModelSpec = ens.ModelSpec()
    """The dynamics ensemble (OfflineRL-Kit's defaults)."""
    critic: FQEConfig = FQEConfig(bootstrap=0)
    """The SARSA critic's regression (FQE's settings; one fit on the full data)."""

    def check(self) -> None:
        if self.horizon < 1 or self.starts < 1:
            raise ValueError(
                f"model OPE needs horizon >= 1 and starts >= 1 (got {self.horizon}, {self.starts})"
            )
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"model OPE discount must be in [0, 1), got {self.discount}")
        self.model.check()


@dataclasses.dataclass
class ModelOPE:
    """The fitted pieces: everything a policy's score needs."""

    config: ModelOPEConfig
    ensemble: ens.Ensemble  # one ensemble (no seed axis)
    critic: FittedQ
    starts: np.ndarray  # [B, D] environment units
    termination: str
    summary: dict  # the fits' epochs, held-out error and seconds


def fit(
    dataset: Dataset,
    config: ModelOPEConfig | None = None,
    env_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelOPE:
    """Fit the dynamics ensemble and the SARSA critic on ``dataset`` (environment units;
    ``env_id``: the task when it is not the one the dataset records)."""
    config = config or ModelOPEConfig()
    config.check()
    say = progress or (lambda message: None)
    data = dataset.to_numpy()
    if data.num_episodes == 0:
        raise ValueError("model-based OPE needs a dataset with at least one episode")
    rule = termination.resolve(
        config.termination,
        env_id or data.info.env_id,
        bool(np.any(np.asarray(data.terminations))),
    )
    say(f"model OPE: fitting a {config.model.num_models}-model dynamics ensemble")
    started = time.perf_counter()
    key = jax.random.PRNGKey(config.seed)
    fitted, model_summary = ens.fit(
        config.model,
        data.observations,
        data.actions,
        data.rewards,
        data.next_observations,
        key[None],
    )
    one = jax.tree_util.tree_map(lambda x: x[0], fitted)
    say("model OPE: fitting the behavior critic (SARSA)")
    critic_config = dataclasses.replace(
        config.critic, discount=config.discount, seed=config.seed, bootstrap=0
    )
    sarsa_actions = next_actions(data)
    start_rows = np.asarray(data.episode_starts)
    sarsa = fqe(
        data,
        config=critic_config,
        next_actions=sarsa_actions[None],
        start_actions=np.asarray(data.actions, np.float32)[start_rows][None],
    )
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(data.size, size=config.starts, replace=data.size < config.starts)
    summary = {
        "model": model_summary,
        "critic_updates": sarsa.updates,
        "behavior_critic_value": float(sarsa.value[0]),
        "behavior_value": sarsa.behavior_value,
        "termination": rule,
        "seconds": time.perf_counter() - started,
    }
    return ModelOPE(
        config=config,
        ensemble=one,
        critic=sarsa.critic,
        starts=np.asarray(data.observations, np.float32)[np.sort(rows)],
        termination=rule,
        summary=summary,
    )


@functools.lru_cache(maxsize=16)
def _rollout_fn(spec: ens.ModelSpec, horizon: int, discount: float, rule: str, policy):
    terminated = termination.RULES[rule]

    def run(model, critic: FittedQ, policy_args, starts, key):
        num_policies, batch, dim = starts.shape
        policy_key, model_key = jax.random.split(key)

        def q_value(observations, actions):
            flat = critic.value(
                observations.reshape(-1, dim), actions.reshape(-1, actions.shape[-1])
            )
            return flat[0].reshape(num_policies, batch)

        return rollouts.score_policies(
            spec,
            model,
            lambda observations: policy(*policy_args, observations, policy_key),
            q_value,
            starts,
            horizon,
            discount,
            model_key,
            terminated,
        )

    return jax.jit(run)


def evaluate(ope: ModelOPE, policy: BatchedPolicy, policy_args, num_policies: int) -> dict:
    """Score ``num_policies`` policies at once: ``policy(*policy_args, observations
    [P, B, D], key)`` (environment units, deterministic). Returns numpy arrays ``[P]``:
    ``amq``, ``model_value`` (see the module docstring), ``model_return`` (the
    discounted model reward alone) and ``alive_steps`` (mean steps before a rollout
    terminated, at most ``horizon``)."""
    config = ope.config
    run = _rollout_fn(config.model, config.horizon, config.discount, ope.termination, policy)
    starts = jnp.broadcast_to(jnp.asarray(ope.starts), (num_policies, *ope.starts.shape))
    key = jax.random.PRNGKey(config.seed + 1)
    out = run(ope.ensemble, ope.critic, policy_args, starts, key)
    return {name: np.asarray(value, np.float64) for name, value in out.items()}


__all__ = ["SCORES", "ModelOPE", "ModelOPEConfig", "evaluate", "fit"]
