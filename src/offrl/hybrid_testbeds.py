"""Test beds for two theory papers on online learning with offline data (NumPy only).

**Coverage-aware exploration in a linear bandit** (FTPedel: Wagenmaker & Pacchiano,
"Leveraging Offline Data in Online Reinforcement Learning", ICML 2023). Arms
``phi_k`` in ``R^d``, rewards ``phi^T theta* + N(0, sigma^2)``. The offline data are
``N_off`` pulls of arms chosen by a behavior that knows only some directions (arms
whose features lie in the first ``covered`` coordinates), so ``Lambda_off =
sum phi phi^T`` is large there and zero elsewhere. Online, each round pulls

    argmax_k  phi_k^T theta_hat + beta * ||phi_k||_{Lambda^-1}

with ``Lambda = lambda I + Lambda_off + Lambda_on`` and ``theta_hat`` the ridge
estimate from offline and online pulls together (:func:`coverage_bonus`): the bonus
is small along the covered directions, so exploration goes to those the offline
data covers poorly. ``optimism`` is the same rule with the online pulls alone
(LinUCB, ``Lambda_off = 0``); ``offline`` recommends the greedy arm of the offline
estimate and never learns. The recommendation after each round is the greedy arm
``argmax phi^T theta_hat``; a run needs ``t`` samples when the recommendation is
``epsilon``-optimal from round ``t`` to the end. This is the minimal form of the
paper's idea (CAPABILITIES row 31), not FTPedel itself, which chooses online
pulls by an experiment design over the poorly covered directions and comes with
its sample-complexity guarantee.

**HNPG on a combination lock** (Zhou, Sekhari, Song & Sun, "Offline Data Enhanced
On-Policy Policy Gradient with Provable Guarantees", ICLR 2024; the lock and the
offline data follow YifeiZhou02/HNPG's ``lock_continuous.py`` and
``collect_offline.py``). ``H`` levels, ``A`` actions, latent states good-A,
good-B and dead: in a good state one action (``opt_a[h]`` or ``opt_b[h]``) moves to
either good state with probability 1/2, any other action to the dead state with a
distractor reward of 0.1 with probability 1/2; the right action at the last level
pays 1. The optimal value is 1; a uniform policy reaches the end with
probability ``A^-H``. Offline data: episodes of the optimal policy that takes a
uniform action with probability ``1/H`` (the released code's epsilon).

Learners, all with tabular softmax policies per level ``pi_h(a | s)`` (the
released code uses per-level networks and rich observations; here the state is
observed, so the comparison is of how each uses the data, not of representation):

- ``npg`` (on-policy): each iteration ``n`` on-policy episodes; ``Q_h(s, a)`` is
  the mean Monte-Carlo return of the visits (0 where none), and the natural
  gradient step of a tabular softmax, ``theta_h(s, a) += eta * A_h(s, a)`` with
  ``A = Q - sum_a pi Q`` (Kakade's NPG).
- ``hnpg``: the same, with the critic fit on the on-policy returns *and* the
  offline transitions' fitted-Q-evaluation targets ``r + sum_a' pi_{h+1}(a'|s')
  Q_{h+1}(s', a')``, level by level from the last (the released code's
  ``update_q``: on-policy and offline squared errors summed).
- ``hyq`` (Hy-Q, off-policy hybrid, Song et al. 2023): fitted Q iteration with
  ``max`` targets on offline and online transitions together, acting greedily.

``samples`` is the number of online episodes until the policy's exact value is
within ``epsilon`` of optimal (evaluated on the latent MDP after each iteration).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# ============================================================ linear bandit


def coverage_bonus(features: np.ndarray, gram: np.ndarray, beta: float) -> np.ndarray:
    """``beta * sqrt(phi^T gram^{-1} phi)`` for every row of ``features`` [K, d]."""
    solved = np.linalg.solve(gram, features.T)  # [d, K]
    return beta * np.sqrt(np.maximum(np.einsum("kd,dk->k", features, solved), 0.0))


@dataclasses.dataclass
class LinearBandit:
    """Arms ``features`` [K, d], parameter ``theta`` [d], Gaussian noise ``sigma``."""

    features: np.ndarray
    theta: np.ndarray
    sigma: float = 0.5

    @classmethod
    def make(cls, dim: int, arms: int, rng: np.random.Generator, sigma: float = 0.5):
        """Arms on the unit sphere, plus one per coordinate axis; ``theta`` uniform on the
        sphere, scaled so the best arm's mean is about 1."""
        features = rng.normal(size=(arms, dim))
        features = np.concatenate([np.eye(dim), features], axis=0)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        theta = rng.normal(size=dim)
        theta /= np.linalg.norm(theta)
        return cls(features, theta, sigma)

    @property
    def means(self) -> np.ndarray:
        return self.features @ self.theta

    def pull(self, arms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.means[arms] + self.sigma * rng.standard_normal(np.shape(arms))

    def gap(self, arm: int) -> float:
        return float(self.means.max() - self.means[arm])


def offline_pulls(bandit: LinearBandit, covered: int, count: int, rng) -> np.ndarray:
    """``count`` pulls spread over the arms whose features lie mostly (90% of their
    squared norm) in the first ``covered`` coordinates: the directions a behavior knew."""
    share = (bandit.features[:, :covered] ** 2).sum(axis=1)
    pool = np.flatnonzero(share >= 0.9)
    return rng.choice(pool, size=count)


def run_bandit(
    bandit: LinearBandit,
    method: str,
    offline_arms: np.ndarray,
    rounds: int,
    rng: np.random.Generator,
    beta: float = 1.0,
    ridge: float = 1.0,
    epsilon: float = 0.05,
) -> dict:
    """One run of ``method`` (``coverage``, ``optimism`` or ``offline``); returns the
    gap of the recommendation after every round, the cumulative regret of the pulls
    and ``samples`` (rounds until the recommendation stays ``epsilon``-optimal;
    ``rounds + 1`` if it never settles)."""
    if method not in ("coverage", "optimism", "offline"):
        raise ValueError(f"unknown method {method!r}: coverage, optimism or offline")
    dim = bandit.features.shape[1]
    gram = ridge * np.eye(dim)
    target = np.zeros(dim)
    if method in ("coverage", "offline"):
        offline_rewards = bandit.pull(offline_arms, rng)
        phi = bandit.features[offline_arms]
        gram += phi.T @ phi
        target += phi.T @ offline_rewards
    gaps, regret = np.zeros(rounds + 1), np.zeros(rounds)
    total = 0.0
    for t in range(rounds + 1):
        estimate = np.linalg.solve(gram, target)
        gaps[t] = bandit.gap(int(np.argmax(bandit.features @ estimate)))
        if t == rounds:
            break
        if method == "offline":
            arm = int(np.argmax(bandit.features @ estimate))
        else:
            scores = bandit.features @ estimate + coverage_bonus(bandit.features, gram, beta)
            arm = int(np.argmax(scores))
            phi = bandit.features[arm]
            gram += np.outer(phi, phi)
            target += phi * bandit.pull(np.asarray(arm), rng)
        total += bandit.gap(arm)
        regret[t] = total
    bad = np.flatnonzero(gaps > epsilon)
    samples = 0 if bad.size == 0 else int(bad[-1]) + 1
    return {"gaps": gaps, "regret": regret, "samples": samples}


# ========================================================== combination lock

GOOD_A, GOOD_B, DEAD = 0, 1, 2


@dataclasses.dataclass
class Lock:
    """The combination lock (see the module docstring); ``opt[h, s]`` is the right action
    in good state ``s`` at level ``h``."""

    horizon: int
    actions: int
    opt: np.ndarray
    anti_reward: float = 0.1

    @classmethod
    def make(cls, horizon: int, actions: int, rng: np.random.Generator) -> Lock:
        return cls(horizon, actions, rng.integers(0, actions, size=(horizon, 2)))

    def reset(self, rng) -> int:
        return int(rng.integers(0, 2))

    def step(self, h: int, state: int, action: int, rng) -> tuple[int, float]:
        """(next state, reward) of ``action`` in ``state`` at level ``h``."""
        if state != DEAD and action == self.opt[h, state]:
            reward = 1.0 if h == self.horizon - 1 else 0.0
            return int(rng.integers(0, 2)), reward
        reward = self.anti_reward if (state != DEAD and rng.random() < 0.5) else 0.0
        return DEAD, reward

    def mean_reward(self, h: int, state: int, action: int) -> float:
        if state == DEAD:
            return 0.0
        if action == self.opt[h, state]:
            return 1.0 if h == self.horizon - 1 else 0.0
        return 0.5 * self.anti_reward

    def next_distribution(self, h: int, state: int, action: int) -> np.ndarray:
        if state != DEAD and action == self.opt[h, state]:
            return np.array([0.5, 0.5, 0.0])
        return np.array([0.0, 0.0, 1.0])

    def value(self, policy: np.ndarray) -> float:
        """Exact expected return of ``policy`` [H, 3, A] (probabilities) from the start."""
        v_next = np.zeros(3)
        for h in reversed(range(self.horizon)):
            q = np.array(
                [
                    [
                        self.mean_reward(h, s, a) + self.next_distribution(h, s, a) @ v_next
                        for a in range(self.actions)
                    ]
                    for s in range(3)
                ]
            )
            v_next = (policy[h] * q).sum(axis=1)
        return float(0.5 * (v_next[GOOD_A] + v_next[GOOD_B]))

    def rollout(self, policy: np.ndarray, rng) -> list[tuple[int, int, int, float, int]]:
        """One episode ``[(h, s, a, r, s'), ...]`` of ``policy`` [H, 3, A]."""
        state, steps = self.reset(rng), []
        for h in range(self.horizon):
            action = int(rng.choice(self.actions, p=policy[h, state]))
            next_state, reward = self.step(h, state, action, rng)
            steps.append((h, state, action, reward, next_state))
            state = next_state
        return steps


def epsilon_greedy_data(lock: Lock, episodes: int, rng, epsilon: float | None = None) -> list:
    """Episodes of the optimal policy taking a uniform action with probability
    ``epsilon`` (default ``1 / H``, the released code's), as transitions."""
    epsilon = 1.0 / lock.horizon if epsilon is None else epsilon
    policy = np.full((lock.horizon, 3, lock.actions), epsilon / lock.actions)
    for h in range(lock.horizon):
        for s in (GOOD_A, GOOD_B):
            policy[h, s, lock.opt[h, s]] += 1.0 - epsilon
    policy[:, DEAD] = 1.0 / lock.actions
    return [step for _ in range(episodes) for step in lock.rollout(policy, rng)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def fit_critic(lock: Lock, policy: np.ndarray, online: list, offline: list) -> np.ndarray:
    """Tabular ``Q_h(s, a)`` [H, 3, A]: per cell, the mean of the on-policy Monte-Carlo
    returns and (offline rows) the FQE targets ``r + E_{a' ~ pi} Q_{h+1}(s', a')``,
    fit from the last level back; 0 where a cell has no data."""
    shape = (lock.horizon, 3, lock.actions)
    sums, counts = np.zeros(shape), np.zeros(shape)
    for episode in online:
        ret = 0.0
        for h, s, a, r, _ in reversed(episode):
            ret += r
            sums[h, s, a] += ret
            counts[h, s, a] += 1
    q = np.zeros(shape)
    by_level: list[list] = [[] for _ in range(lock.horizon)]
    for step in offline:
        by_level[step[0]].append(step)
    for h in reversed(range(lock.horizon)):
        level_sums, level_counts = sums[h].copy(), counts[h].copy()
        for _, s, a, r, s_next in by_level[h]:
            bootstrap = 0.0
            if h + 1 < lock.horizon:
                bootstrap = float(policy[h + 1, s_next] @ q[h + 1, s_next])
            level_sums[s, a] += r + bootstrap
            level_counts[s, a] += 1
        q[h] = np.where(level_counts > 0, level_sums / np.maximum(level_counts, 1), 0.0)
    return q


def fitted_q_iteration(lock: Lock, transitions: list) -> np.ndarray:
    """Hy-Q's critic: ``Q_h(s, a)`` = mean of ``r + max_a' Q_{h+1}(s', a')`` over the
    transitions (offline and online together), last level first; 0 where no data."""
    shape = (lock.horizon, 3, lock.actions)
    q = np.zeros(shape)
    data = np.asarray(transitions, np.float64).reshape(-1, 5)
    for h in reversed(range(lock.horizon)):
        rows = data[data[:, 0] == h]
        s, a, r, s_next = (rows[:, i] for i in range(1, 5))
        s, a, s_next = s.astype(int), a.astype(int), s_next.astype(int)
        target = r + (q[h + 1, s_next].max(axis=1) if h + 1 < lock.horizon else 0.0)
        sums, counts = np.zeros((3, lock.actions)), np.zeros((3, lock.actions))
        np.add.at(sums, (s, a), target)
        np.add.at(counts, (s, a), 1)
        q[h] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return q


def run_lock(
    lock: Lock,
    method: str,
    offline: list,
    iterations: int,
    episodes_per_iteration: int,
    rng: np.random.Generator,
    step_size: float = 10.0,
    epsilon: float = 0.1,
    explore: float = 0.1,
) -> dict:
    """One run of ``npg``, ``hnpg`` or ``hyq`` on ``lock``; returns the exact value after
    every iteration and ``samples``: online episodes until the value first comes within
    ``epsilon`` of the optimum 1 (``None`` if it never does). Hy-Q acts
    ``explore``-greedily while collecting and is evaluated greedily."""
    if method not in ("npg", "hnpg", "hyq"):
        raise ValueError(f"unknown method {method!r}: npg, hnpg or hyq")
    shape = (lock.horizon, 3, lock.actions)
    logits = np.zeros(shape)
    q = np.zeros(shape)
    online_transitions: list = []
    values, samples = [], None

    def greedy(q):
        policy = np.zeros(shape)
        np.put_along_axis(policy, q.argmax(axis=-1)[..., None], 1.0, axis=-1)
        return policy

    for iteration in range(iterations + 1):
        policy = greedy(q) if method == "hyq" else softmax(logits)
        values.append(lock.value(policy))
        if samples is None and values[-1] >= 1.0 - epsilon:
            samples = iteration * episodes_per_iteration
        if iteration == iterations:
            break
        behavior = (1 - explore) * policy + explore / lock.actions if method == "hyq" else policy
        episodes = [lock.rollout(behavior, rng) for _ in range(episodes_per_iteration)]
        if method == "hyq":
            online_transitions.extend(step for episode in episodes for step in episode)
            q = fitted_q_iteration(lock, offline + online_transitions)
            continue
        critic = fit_critic(lock, policy, episodes, offline if method == "hnpg" else [])
        advantage = critic - (policy * critic).sum(axis=-1, keepdims=True)
        logits = logits + step_size * advantage
    return {"values": np.asarray(values), "samples": samples}
