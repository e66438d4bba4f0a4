"""LCB's test bed: pessimism in contextual bandits and tabular MDPs (NumPy only).

Rashidinejad et al., "Bridging Offline Reinforcement Learning and Imitation
Learning: A Tale of Pessimism" (2021), show that one algorithm, the
lower-confidence-bound (LCB) policy, adapts to how close the data are to an
expert: with expert data it matches behavior cloning (sub-optimality falling
as ``1/N``), with uniform data it matches the greedy plug-in policy (``1/sqrt(N)``),
and in between it is never far from the better of the two, while greedy fails on
expert data (a rarely tried action that got lucky wins) and BC fails on
non-expert data. Everything here is exact and fast, so the rates can be measured.

Contextual bandit (:class:`Bandit`): ``S`` contexts drawn uniformly, ``A``
actions, Bernoulli rewards with means ``r(s, a)``; the data are ``N`` triples
``(s, a, r)`` with ``a`` the expert's action ``a*(s) = argmax_a r(s, a)`` with
probability ``expert_share`` and otherwise a mediocre operator's (:func:`mixture`:
half the time a fixed action of median value, half the time a uniform one).

Policies from the counts ``n(s, a)`` and empirical means ``r_hat(s, a)``:

- ``lcb``: ``argmax_a r_hat(s, a) - b(s, a)`` with the Hoeffding bonus
  ``b(s, a) = c * sqrt(log(2 S A N / delta) / (2 n(s, a)))`` (``+inf`` when
  ``n = 0``), :func:`bonus`;
- ``greedy``: ``argmax_a r_hat(s, a)`` over the actions tried (the plug-in);
- ``bc``: the most frequent action in ``s`` (imitation).

A context never seen gets action 0 from all three. Sub-optimality is
``E_s[r(s, a*(s)) - r(s, pi(s))]``, computed exactly.

Tabular MDP (:class:`TabularMDP`): ``S`` states, ``A`` actions, discount
``gamma``, transitions drawn from a Dirichlet, rewards in ``[0, 1]``; data are
``N`` transitions with ``s`` from the behavior's discounted occupancy, ``a`` from
the same expert/uniform mixture and ``s' ~ P(s, a)``. ``vi_lcb`` runs value
iteration on the empirical model with ``Q(s, a) = r_hat - b + gamma P_hat V``,
``V(s) = max(0, max_a Q(s, a))`` (values kept in ``[0, V_max]`` as in the paper's
VI-LCB) and ``b = c * sqrt(log(2 S A N / delta) / (2 n)) / (1 - gamma)``; an action
never tried is never chosen (``Q = -inf``); the policy is ``argmax_a Q`` (the
unclipped lower bounds, so a heavily penalized state still prefers its
best-supported action). ``vi_greedy`` is the same with ``b = 0``; ``bc`` the most
frequent action. Sub-optimality is ``V*(rho) - V^pi(rho)``, exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def bonus(counts: np.ndarray, num_samples: int, delta: float = 0.1, scale: float = 1.0):
    """``b(s, a) = scale * sqrt(log(2 S A N / delta) / (2 n(s, a)))``; ``inf`` where ``n = 0``."""
    counts = np.asarray(counts, np.float64)
    log_term = np.log(2.0 * counts.size * max(num_samples, 1) / delta)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, scale * np.sqrt(log_term / (2.0 * counts)), np.inf)


def counts_and_means(states, actions, rewards, num_states: int, num_actions: int):
    """``n(s, a)`` and ``r_hat(s, a)`` (0 where ``n = 0``)."""
    counts = np.zeros((num_states, num_actions))
    sums = np.zeros((num_states, num_actions))
    np.add.at(counts, (states, actions), 1.0)
    np.add.at(sums, (states, actions), rewards)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return counts, means


def most_frequent(counts: np.ndarray) -> np.ndarray:
    """BC's action per state (ties and unseen states: the lowest index)."""
    return np.argmax(counts, axis=1)


def lcb_policy(counts, means, num_samples: int, delta: float = 0.1, scale: float = 1.0):
    """``argmax_a r_hat - b`` (unseen states: action 0)."""
    lower = means - bonus(counts, num_samples, delta, scale)
    return np.argmax(lower, axis=1)


def greedy_policy(counts, means):
    """``argmax_a r_hat`` over the tried actions (unseen states: action 0)."""
    return np.argmax(np.where(counts > 0, means, -np.inf), axis=1)


def mixture(values: np.ndarray, expert_share: float) -> np.ndarray:
    """The behavior ``mu(a | s)``: the best action of ``values [S, A]`` with probability
    ``expert_share``; otherwise a mediocre operator, who half the time takes a fixed
    action of median value and half the time tries one uniformly. Its most frequent
    action is the expert's only when ``expert_share`` exceeds about a third, so BC
    fails below that and succeeds above it."""
    num_states, num_actions = values.shape
    rows = np.arange(num_states)
    median = np.argsort(values, axis=1)[:, num_actions // 2]
    mu = np.full((num_states, num_actions), 0.5 * (1.0 - expert_share) / num_actions)
    mu[rows, median] += 0.5 * (1.0 - expert_share)
    mu[rows, np.argmax(values, axis=1)] += expert_share
    return mu


def draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``probabilities [N, K]``."""
    cumulative = np.cumsum(probabilities, axis=1)
    picks = (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)
    return np.minimum(picks, probabilities.shape[1] - 1)


@dataclasses.dataclass
class Bandit:
    """A contextual bandit with Bernoulli rewards (means uniform in ``[0, 1]``)."""

    means: np.ndarray  # [S, A]

    @classmethod
    def random(cls, num_contexts: int, num_actions: int, seed: int) -> Bandit:
        rng = np.random.default_rng(seed)
        return cls(rng.uniform(0.0, 1.0, (num_contexts, num_actions)))

    @property
    def expert(self) -> np.ndarray:
        return np.argmax(self.means, axis=1)

    def behavior(self, expert_share: float) -> np.ndarray:
        """``mu(a | s)`` (:func:`mixture`)."""
        return mixture(self.means, expert_share)

    def sample(self, num_samples: int, expert_share: float, seed: int):
        """``(s, a, r)`` arrays: uniform contexts, actions from :meth:`behavior`,
        Bernoulli rewards."""
        rng = np.random.default_rng(seed)
        num_contexts, num_actions = self.means.shape
        states = rng.integers(num_contexts, size=num_samples)
        actions = draw(self.behavior(expert_share)[states], rng)
        rewards = (rng.random(num_samples) < self.means[states, actions]).astype(np.float64)
        return states, actions, rewards

    def suboptimality(self, policy: np.ndarray) -> float:
        rows = np.arange(len(policy))
        return float(np.mean(self.means[rows, self.expert] - self.means[rows, policy]))

    def policies(self, states, actions, rewards, delta: float = 0.1, scale: float = 1.0):
        counts, means = counts_and_means(states, actions, rewards, *self.means.shape)
        return {
            "lcb": lcb_policy(counts, means, len(states), delta, scale),
            "greedy": greedy_policy(counts, means),
            "bc": most_frequent(counts),
        }


@dataclasses.dataclass
class TabularMDP:
    """A discounted MDP: ``P [S, A, S]``, ``R [S, A]`` in ``[0, 1]``, start ``rho [S]``."""

    transitions: np.ndarray
    rewards: np.ndarray
    start: np.ndarray
    gamma: float = 0.9

    @classmethod
    def random(cls, num_states: int, num_actions: int, seed: int, gamma: float = 0.9):
        rng = np.random.default_rng(seed)
        transitions = rng.dirichlet(np.full(num_states, 0.3), size=(num_states, num_actions))
        rewards = rng.uniform(0.0, 1.0, (num_states, num_actions))
        start = np.full(num_states, 1.0 / num_states)
        return cls(transitions, rewards, start, gamma)

    def evaluate(self, policy: np.ndarray) -> np.ndarray:
        """``V^pi`` exactly (a linear solve)."""
        rows = np.arange(len(policy))
        p_pi, r_pi = self.transitions[rows, policy], self.rewards[rows, policy]
        return np.linalg.solve(np.eye(len(policy)) - self.gamma * p_pi, r_pi)

    def optimal(self, iterations: int = 2000) -> np.ndarray:
        value = np.zeros(len(self.start))
        for _ in range(iterations):
            value = np.max(self.rewards + self.gamma * self.transitions @ value, axis=1)
        return np.argmax(self.rewards + self.gamma * self.transitions @ value, axis=1)

    def behavior(self, expert_share: float) -> np.ndarray:
        """``mu(a | s)`` (:func:`mixture` of the optimal Q-values)."""
        value = self.evaluate(self.optimal())
        return mixture(self.rewards + self.gamma * self.transitions @ value, expert_share)

    def occupancy(self, mu: np.ndarray) -> np.ndarray:
        """The normalized discounted state occupancy of ``mu`` from ``rho``."""
        p_mu = np.einsum("sa,sat->st", mu, self.transitions)
        d = np.linalg.solve((np.eye(len(self.start)) - self.gamma * p_mu).T, self.start)
        return d * (1.0 - self.gamma)

    def sample(self, num_samples: int, expert_share: float, seed: int):
        """``(s, a, r, s')`` arrays; ``r`` Bernoulli with mean ``R(s, a)``."""
        rng = np.random.default_rng(seed)
        mu = self.behavior(expert_share)
        d = self.occupancy(mu)
        states = rng.choice(len(d), size=num_samples, p=d / d.sum())
        actions = draw(mu[states], rng)
        rewards = (rng.random(num_samples) < self.rewards[states, actions]).astype(np.float64)
        next_states = draw(self.transitions[states, actions], rng)
        return states, actions, rewards, next_states

    def suboptimality(self, policy: np.ndarray) -> float:
        best = self.evaluate(self.optimal())
        return float(self.start @ (best - self.evaluate(policy)))

    def policies(self, states, actions, rewards, next_states, delta=0.1, scale=1.0, sweeps=500):
        num_states, num_actions = self.rewards.shape
        counts, means = counts_and_means(states, actions, rewards, num_states, num_actions)
        model = np.zeros((num_states, num_actions, num_states))
        np.add.at(model, (states, actions, next_states), 1.0)
        model = np.divide(model, counts[..., None], out=np.zeros_like(model),
                          where=counts[..., None] > 0)  # fmt: skip
        penalty = bonus(counts, len(states), delta, scale) / (1.0 - self.gamma)
        out = {"bc": most_frequent(counts)}
        for name, b in (("vi_lcb", penalty), ("vi_greedy", np.zeros_like(penalty))):
            q = np.zeros((num_states, num_actions))
            value = np.zeros(num_states)
            for _ in range(sweeps):
                q = means - np.where(counts > 0, b, 0.0) + self.gamma * model @ value
                q = np.where(counts > 0, q, -np.inf)  # never an action without data
                value = np.maximum(q.max(axis=1), 0.0)  # V in [0, V_max]; unseen states 0
            out[name] = np.argmax(q, axis=1)
        return out


def suboptimality_curve(
    kind: str,
    sizes,
    expert_shares,
    repetitions: int = 20,
    num_states: int = 20,
    num_actions: int = 10,
    delta: float = 0.1,
    scale: float = 1.0,
) -> dict:
    """Mean and sample std of every policy's sub-optimality over ``repetitions``
    (instance and data seeds), per expert share and data size, and the slope of
    ``log(sub-optimality)`` against ``log(N)`` (the empirical rate)."""
    results: dict = {"kind": kind, "sizes": list(sizes), "repetitions": repetitions, "curves": {}}
    for share in expert_shares:
        table: dict[str, list] = {}
        for size in sizes:
            values: dict[str, list[float]] = {}
            for repetition in range(repetitions):
                if kind == "bandit":
                    problem = Bandit.random(num_states, num_actions, seed=repetition)
                    data = problem.sample(size, share, seed=10_000 + repetition)
                    chosen = problem.policies(*data, delta=delta, scale=scale)
                else:
                    problem = TabularMDP.random(num_states, num_actions, seed=repetition)
                    data = problem.sample(size, share, seed=10_000 + repetition)
                    chosen = problem.policies(*data, delta=delta, scale=scale)
                for name, policy in chosen.items():
                    values.setdefault(name, []).append(problem.suboptimality(policy))
            for name, v in values.items():
                table.setdefault(name, []).append(
                    {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))}
                )
        slopes = {}
        for name, rows in table.items():
            means = np.array([r["mean"] for r in rows])
            positive = means > 0
            if positive.sum() >= 2:
                slopes[name] = float(np.polyfit(np.log(np.asarray(sizes)[positive]),
                                                np.log(means[positive]), 1)[0])  # fmt: skip
        results["curves"][str(share)] = {"policies": table, "log_log_slope": slopes}
    return results
