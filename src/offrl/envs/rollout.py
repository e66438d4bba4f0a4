"""Vectorized Gymnasium rollouts driven by one jitted, batched ``act``.

``policy(observations[S, N, obs_dim], key) -> actions[S, N, act_dim]`` acts for
``S`` policies (seeds) in ``N`` environments each in one call; the
environments are stepped on the host. A policy that reads a history (a sequence
policy, :class:`offrl.core.history.HistoryPolicy`) also has
``reset_history()``, called when a block of episodes starts, and
``record(actions, rewards)``, called after every step with ``[S, N]`` rewards.
Episode ``i`` of every seed starts from ``reset(seed=seed + i)``, so all seeds
face the same initial states.

Three disjoint blocks of reset seeds keep reported scores honest:
``PERIODIC_SEED`` for the evaluations during training (curves, and choosing the
best checkpoint), ``HELDOUT_SEED`` for the final and best policies' reported
scores (nothing is chosen on them), ``REFERENCE_SEED`` for measuring a task's
reference returns. Interaction episodes use ``seed * 1_000_003 + episode``
(fine-tuning adds 500,000), far below the last two blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from offrl.envs.registry import get_task, make_env, normalized_score

PERIODIC_SEED = 10_000
HELDOUT_SEED = 900_000_000
REFERENCE_SEED = 800_000_000


@dataclasses.dataclass
class EvaluationResult:
    """Returns and lengths per seed and episode, ``[S, episodes]``.

    ``discounted`` holds ``sum_t discount^t r_t`` of each episode (the quantity an
    offline value estimate such as FQE targets). On tasks that report a safety
    margin (``info["margin"]``, :mod:`offrl.envs.safety`), ``violations`` counts
    each episode's steps that end in a state with ``h < 0``. On tasks that report a
    per-step ``info["cost"]``, ``costs`` holds each episode's summed cost and
    ``cost_budget`` the task's episode budget, if it has one (a global constraint).
    """

    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray | None
    discounted: np.ndarray | None = None
    discount: float = 0.99
    violations: np.ndarray | None = None
    costs: np.ndarray | None = None
    cost_budget: float | None = None

    def cost_summary(self) -> dict | None:
        """Mean episode cost and, with a budget, the share of episodes within it,
        per seed; ``None`` on tasks without costs."""
        if self.costs is None:
            return None
        out = {"cost_per_seed": self.costs.mean(axis=1).tolist()}
        if self.cost_budget is not None:
            out["within_budget_per_seed"] = (self.costs <= self.cost_budget).mean(axis=1).tolist()
        return out

    def safety(self) -> dict | None:
        """Violation rate (steps with ``h < 0`` / steps) and the share of episodes
        with any violation, overall and per seed; ``None`` without margins."""
        if self.violations is None:
            return None
        rate = self.violations.sum(axis=1) / np.maximum(self.lengths.sum(axis=1), 1)
        any_violation = (self.violations > 0).mean(axis=1)
        return {
            "violation_rate": float(self.violations.sum() / max(self.lengths.sum(), 1)),
            "episodes_with_violation": float((self.violations > 0).mean()),
            "violation_rate_per_seed": rate.tolist(),
            "episodes_with_violation_per_seed": any_violation.tolist(),
        }

    def summary(self) -> dict:
        out = {
            "return_mean": float(self.returns.mean()),
            "return_std": float(self.returns.std()),
            "length_mean": float(self.lengths.mean()),
            "return_mean_per_seed": self.returns.mean(axis=1).tolist(),
        }
        if self.violations is not None:
            out.update(self.safety())
        if self.costs is not None:
            out.update(self.cost_summary())
        if self.normalized is not None:
            out["normalized_score"] = float(self.normalized.mean())
            out["normalized_score_per_seed"] = self.normalized.mean(axis=1).tolist()
        return out


def evaluate(
    policy: Callable[[np.ndarray, jax.Array], np.ndarray],
    env_id: str,
    num_seeds: int,
    num_episodes: int = 10,
    seed: int = PERIODIC_SEED,
    key: jax.Array | None = None,
    max_parallel: int = 10,
    discount: float = 0.99,
) -> EvaluationResult:
    """Run ``num_episodes`` episodes for each of ``num_seeds`` policies.

    Args:
        policy: batched act in environment units (see module docstring).
        env_id: Gymnasium id; the registered time limit applies.
        num_seeds: the leading axis ``S`` of the policy.
        num_episodes: episodes per seed.
        seed: reset seed of the first episode.
        key: for stochastic policies; ``None`` means ``PRNGKey(0)``.
        max_parallel: environments stepped side by side per seed.
        discount: of the discounted returns recorded beside the plain ones.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    returns = np.zeros((num_seeds, num_episodes))
    discounted = np.zeros((num_seeds, num_episodes))
    lengths = np.zeros((num_seeds, num_episodes), dtype=np.int64)
    violations = np.zeros((num_seeds, num_episodes), dtype=np.int64)
    costs = np.zeros((num_seeds, num_episodes))
    has_margin = has_cost = False
    history = hasattr(policy, "record")  # a sequence policy keeps each episode's history
    for first in range(0, num_episodes, max_parallel):
        episodes = list(range(first, min(num_episodes, first + max_parallel)))
        envs = [[make_env(env_id) for _ in episodes] for _ in range(num_seeds)]
        obs = np.stack(
            [
                np.stack(
                    [env.reset(seed=seed + e)[0] for env, e in zip(row, episodes, strict=True)]
                )
                for row in envs
            ]
        ).astype(np.float32)  # [S, N, obs_dim]
        done = np.zeros((num_seeds, len(episodes)), dtype=bool)
        if history:
            policy.reset_history()
        while not done.all():
            key, act_key = jax.random.split(key)
            actions = np.asarray(policy(obs, act_key))
            step_rewards = np.zeros(done.shape, np.float32)
            for s, row in enumerate(envs):
                for n, env in enumerate(row):
                    if done[s, n]:
                        continue
                    next_obs, reward, terminated, truncated, info = env.step(actions[s, n])
                    step_rewards[s, n] = reward
                    if "margin" in info:
                        has_margin = True
                        violations[s, first + n] += info["margin"] < 0
                    if "cost" in info:
                        has_cost = True
                        costs[s, first + n] += info["cost"]
                    returns[s, first + n] += reward
                    discounted[s, first + n] += discount ** lengths[s, first + n] * reward
                    lengths[s, first + n] += 1
                    obs[s, n] = next_obs
                    done[s, n] = terminated or truncated
            if history:
                policy.record(actions, step_rewards)
        for row in envs:
            for env in row:
                env.close()
    task = get_task(env_id)
    normalized = normalized_score(returns, task)
    return EvaluationResult(
        returns=returns,
        lengths=lengths,
        normalized=None if normalized is None else np.asarray(normalized),
        discounted=discounted,
        discount=discount,
        violations=violations if has_margin else None,
        costs=costs if has_cost else None,
        cost_budget=None if task is None else task.cost_budget,
    )
