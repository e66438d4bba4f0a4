"""Fitted Q Evaluation (Le et al., 2019) with bootstrap intervals over dataset resamples.

For a fixed deterministic policy ``pi`` and a dataset ``D``, FQE fits

    Q(s, a) <- r + gamma * (1 - terminated) * Q_targ(s', pi(s'))

by regression on minibatches of ``D`` (a target network moved by Polyak
averaging), and estimates the policy's value as the mean of ``Q(s0, pi(s0))``
over the dataset's episode starts: the expected discounted return from the
data's start-state distribution. Nothing here touches an environment.

Uncertainty comes from the data (Kostrikov & Nachum, 2020, "Statistical
Bootstrapping for Uncertainty Estimation in Off-Policy Evaluation"): each of
``bootstrap`` fits sees its own resample of whole episodes, drawn with
replacement; the estimate is the mean over fits and the interval the
percentiles across them. All fits, for every policy, run together under one
``jax.vmap``: the policy's actions are computed once for every ``s'`` and every
start state, so a fit is a critic regression and nothing else.

Because the policy is fixed, ``pi(s')`` is precomputed for the whole dataset,
which makes FQE much cheaper than training an actor-critic.

Units: FQE estimates a *discounted* value. Where the task registry holds
discounted reference values (random and expert policies, from the same start
states), :func:`normalized_value` maps it to D4RL's 0 (random) .. 100 (expert)
scale; the dataset's own discounted behavior value (a Monte Carlo average over
its episodes) is always reported beside it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl.data.dataset import Dataset
from offrl.nn import QNetwork

#: ``policy(observations[N, obs_dim]) -> actions[N, act_dim]``, both in environment units.
HostPolicy = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class FQEConfig:
    """Fitted Q Evaluation settings.

    The defaults answer "which checkpoint?" in about a minute on a 2-core CPU: small
    critics, fits that stop once the estimates settle, and bootstrap fits scaled to
    the number of candidates. :meth:`thorough` is the slower setting of earlier
    versions (256x256 critics, 10k updates, 5 fits per policy, no early stop); see
    docs/benchmarks.md for what each costs in ranking quality.
    """

    updates: int = 4_000
    """Gradient updates per fit at most (every fit runs this many when ``tolerance`` is None)."""
    min_updates: int = 1_500
    """Updates before the estimates may be declared settled."""
    check_every: int = 500
    """Updates between looks at the estimates (the settling test and the progress)."""
    tolerance: float | None = 0.01
    """Stop when, over the last ``settle_window`` updates, no policy's estimate moved by
    more than ``tolerance`` times the mean absolute estimate and no two estimates
    further apart than that swapped places; None = run every update."""
    settle_window: int = 1_000
    """Updates over which the estimates must hold still."""
    batch_size: int = 256
    """Transitions per update."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    discount: float = 0.99
    """Discount of the estimated value."""
    tau: float = 0.1
    """Polyak rate of the target network. A value's error shrinks by about ``gamma``
    every ``1 / tau`` updates, so the usual 0.005 needs twenty times the updates
    (measured on Pendulum: 10k updates at 0.005 rank six policies at rho -0.37; at
    0.05, rho 1.0; eight TD3+BC checkpoints were still drifting 1.5% per 500 updates
    after 6k at 0.05 and settle within 4k at 0.1)."""
    hidden_dims: tuple[int, ...] = (64, 64)
    """Hidden widths of the Q network."""
    layer_norm: bool = True
    """LayerNorm after each hidden layer (keeps bootstrapped regression stable)."""
    bootstrap: int | None = None
    """Fits on episode resamples per policy (the interval's basis); 0 = one fit on the
    full data; None = as many (1..5) as keep ``work`` fit-updates for all policies."""
    work: int = 160_000
    """Fit-updates (fits x ``updates``) the automatic ``bootstrap`` aims at: 8
    candidates get 5 fits each, 16 get 2, 40 or more one fit on the full data."""
    confidence: float = 0.95
    """Coverage of the percentile interval across bootstrap fits."""
    seed: int = 0
    """Seed of the network initialisation, the minibatches and the resamples."""
    max_transitions: int | None = None
    """Use at most this many transitions (whole episodes, chosen at random); None = all."""

    @classmethod
    def thorough(cls, **overrides) -> FQEConfig:
        """The setting of earlier versions: 256x256 critics, 10k updates per fit at
        Polyak rate 0.05, 5 bootstrap fits per policy, no early stop (about 15x the
        default's work)."""
        settings = {
            "updates": 10_000,
            "tau": 0.05,
            "tolerance": None,
            "hidden_dims": (256, 256),
            "bootstrap": 5,
        }
        return cls(**{**settings, **overrides})

    def fits_per_policy(self, num_policies: int) -> int:
        """Bootstrap fits per policy for ``num_policies`` candidates (0 = one full fit)."""
        if self.bootstrap is not None:
            return self.bootstrap
        fits = self.work // max(num_policies * self.updates, 1)
        return 0 if fits < 2 else min(int(fits), 5)


@dataclasses.dataclass
class FQEResult:
    """Estimates for ``P`` policies.

    Attributes:
        value: the estimated discounted value per policy (mean over fits), ``[P]``.
        low, high: the bootstrap percentile interval per policy, ``[P]`` (equal to
            ``value`` when there is a single fit).
        fits: the estimate of every fit, ``[P, K]``.
        behavior_value: Monte Carlo discounted return of the dataset's episodes from
            their starts (the behavior policy's value, data only).
        discount: the discount of every value here.
        loss: the final TD regression loss per fit (in the scaled units), ``[P, K]``.
        updates: the updates every fit ran (fewer than ``config.updates`` when the
            estimates settled).
        history: ``(updates, value[P])`` at every look at the estimates.
    """

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    fits: np.ndarray
    behavior_value: float
    discount: float
    loss: np.ndarray
    updates: int = 0
    history: list = dataclasses.field(default_factory=list)
    critic: FittedQ | None = None

    def as_dict(self, index: int = 0) -> dict:
        return {
            "value": float(self.value[index]),
            "low": float(self.low[index]),
            "high": float(self.high[index]),
            "fits": self.fits[index].tolist(),
            "behavior_value": self.behavior_value,
            "discount": self.discount,
            "final_loss": float(np.mean(self.loss[index])),
            "updates": self.updates,
        }


@struct.dataclass
class FittedQ:
    """The fitted critics of an FQE run, a pytree that jitted code can take.

    :meth:`value` gives every policy's Q in reward units, averaged over its fits.
    """

    params: dict  # leaves [M, ...]: one set of weights per fit
    mean: jax.Array  # the observation standardization the fits saw
    std: jax.Array
    low: jax.Array  # the action bounds mapped to [-1, 1]
    high: jax.Array
    scale: float
    fit_policy: tuple[int, ...] = struct.field(pytree_node=False)  # the policy of each fit
    hidden_dims: tuple[int, ...] = struct.field(pytree_node=False)
    layer_norm: bool = struct.field(pytree_node=False)

    def value(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        """``Q(s, a)`` of every policy, ``[P, B]``, for ``observations [B, D]`` and
        ``actions [B, A]`` in environment units."""
        module = QNetwork(self.hidden_dims, layer_norm=self.layer_norm)
        obs = (observations - self.mean) / self.std
        unit = jnp.clip(2.0 * (actions - self.low) / (self.high - self.low) - 1.0, -1.0, 1.0)
        q = jax.vmap(lambda p: module.apply(p, obs, unit))(self.params)  # [M, B]
        owner = np.asarray(self.fit_policy)
        onehot = np.eye(owner.max() + 1, dtype=np.float32)[owner].T  # [P, M]
        onehot /= onehot.sum(axis=1, keepdims=True)
        return jnp.asarray(onehot) @ q / self.scale


def discounted_episode_returns(dataset: Dataset, discount: float) -> np.ndarray:
    """``sum_t gamma^t r_t`` of every episode from its first row, ``[E]``."""
    host = dataset.to_numpy()
    starts = np.asarray(host.episode_starts)
    lengths = np.asarray(host.episode_lengths)
    # Step index within its episode, for every row (episodes are contiguous, non-empty).
    t = np.arange(host.size) - np.repeat(starts, lengths)
    weighted = np.asarray(host.rewards, np.float64) * float(discount) ** t
    return np.add.reduceat(weighted, starts) if host.num_episodes else np.zeros(0)


def bootstrap_rows(
    episode_starts: np.ndarray, episode_lengths: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One episode-level bootstrap resample as ``size`` row indices, and each episode's count.

    Episodes are drawn with replacement until their rows cover ``size``; the
    last one drawn is cut to fit. Returns ``(rows[size], counts[E])``.
    """
    counts = np.zeros(len(episode_starts), np.int64)
    rows: list[np.ndarray] = []
    total = 0
    while total < size:
        e = int(rng.integers(len(episode_starts)))
        counts[e] += 1
        chunk = np.arange(episode_starts[e], episode_starts[e] + episode_lengths[e])
        rows.append(chunk[: size - total])
        total += len(rows[-1])
    return np.concatenate(rows).astype(np.int32), counts


def _subsample(dataset: Dataset, max_transitions: int | None, seed: int) -> Dataset:
    if max_transitions is None or dataset.size <= max_transitions:
        return dataset
    order = np.random.default_rng(seed).permutation(dataset.num_episodes)
    lengths = np.asarray(dataset.episode_lengths)[order]
    keep = order[: max(1, int(np.searchsorted(np.cumsum(lengths), max_transitions, "right")))]
    return dataset.select_episodes(np.sort(keep))


def _actions_to_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)


def policy_actions(policy: HostPolicy, observations: np.ndarray, chunk: int = 65_536):
    """``policy`` applied to ``observations`` in chunks (bounded memory)."""
    parts = [
        np.asarray(policy(observations[i : i + chunk]), np.float32)
        for i in range(0, len(observations), chunk)
    ]
    return np.concatenate(parts, axis=0)


@functools.lru_cache(maxsize=8)
def _build_fit(config: FQEConfig, observation_dim: int, action_dim: int, chunk: int):
    """A jitted ``chunk`` updates of all fits, vmapped over fits."""
    module = QNetwork(config.hidden_dims, layer_norm=config.layer_norm)
    tx = optax.adam(config.learning_rate)

    def init(key):
        params = module.init(key, jnp.zeros((1, observation_dim)), jnp.zeros((1, action_dim)))
        return params, params, tx.init(params)

    def one_update(carry, key, data, all_rows, resample, policy, policy_next):
        params, target, opt_state = carry
        columns = jax.random.randint(key, (config.batch_size,), 0, all_rows.shape[1])
        idx = all_rows[resample, columns]  # a gather: no per-fit copy of the rows
        obs = data["observations"][idx]
        next_obs = data["next_observations"][idx]
        next_q = module.apply(target, next_obs, policy_next[policy, idx])
        y = data["rewards"][idx] + config.discount * (1.0 - data["terminations"][idx]) * next_q
        y = jax.lax.stop_gradient(y)

        def loss_fn(p):
            return jnp.mean((module.apply(p, obs, data["actions"][idx]) - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        target = jax.tree_util.tree_map(
            lambda t, o: (1.0 - config.tau) * t + config.tau * o, target, params
        )
        return (params, target, opt_state), loss

    def run_chunk(carry, key, data, all_rows, resample, policy, policy_next):
        keys = jax.random.split(key, chunk)
        carry, losses = jax.lax.scan(
            lambda c, k: one_update(c, k, data, all_rows, resample, policy, policy_next),
            carry,
            keys,
        )
        return carry, losses[-min(100, chunk) :].mean()

    # The fits axis maps the carry, the key, the resample and the policy index; the
    # data, the resamples' rows and every policy's next actions are shared.
    vmapped = jax.vmap(run_chunk, in_axes=(0, 0, None, None, 0, 0, None))

    def value(params, start_obs, start_actions):
        return module.apply(params, start_obs, start_actions)

    return jax.jit(jax.vmap(init)), jax.jit(vmapped), jax.jit(jax.vmap(value))


def fqe(
    dataset: Dataset,
    policies: Sequence[HostPolicy] | None = None,
    config: FQEConfig | None = None,
    next_actions: np.ndarray | None = None,
    start_actions: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FQEResult:
    """Estimate the discounted value of every policy from ``dataset`` alone.

    Args:
        dataset: transitions in environment units (as loaded; not normalized).
        policies: deterministic policies in environment units; or give
            ``next_actions[P, N, act_dim]`` and ``start_actions[P, E, act_dim]``
            (environment units) directly.
        config: :class:`FQEConfig`.
        progress: called as ``progress(done_updates, total_updates)``.
    """
    config = config or FQEConfig()
    if config.updates <= 0 or config.batch_size <= 0:
        raise ValueError(
            f"FQE needs updates > 0 and batch_size > 0 (got {config.updates}, {config.batch_size})"
        )
    if not 0.0 <= config.discount < 1.0:
        raise ValueError(f"FQE discount must be in [0, 1), got {config.discount}")
    if config.check_every <= 0 or config.settle_window <= 0:
        raise ValueError(
            f"FQE needs check_every > 0 and settle_window > 0 (got {config.check_every}, "
            f"{config.settle_window})"
        )
    if config.tolerance is not None and not config.tolerance > 0:
        raise ValueError(f"FQE tolerance must be positive or None, got {config.tolerance}")
    if config.bootstrap is not None and config.bootstrap < 0:
        raise ValueError(f"FQE bootstrap must be >= 0 or None, got {config.bootstrap}")
    data = _subsample(dataset.to_numpy(), config.max_transitions, config.seed)
    if data.num_episodes == 0:
        raise ValueError("FQE needs a dataset with at least one episode")
    starts = np.asarray(data.episode_starts)
    lengths = np.asarray(data.episode_lengths)
    observations = np.asarray(data.observations, np.float32)
    next_observations = np.asarray(data.next_observations, np.float32)
    start_observations = observations[starts]
    if next_actions is None or start_actions is None:
        if not policies:
            raise ValueError("give policies, or next_actions and start_actions")
        next_actions = np.stack([policy_actions(p, next_observations) for p in policies])
        start_actions = np.stack([policy_actions(p, start_observations) for p in policies])
    elif data.size != dataset.size:
        raise ValueError("precomputed actions cannot be combined with max_transitions")
    next_actions = np.asarray(next_actions, np.float32)
    start_actions = np.asarray(start_actions, np.float32)
    num_policies = next_actions.shape[0]
    if next_actions.shape[1] != data.size or start_actions.shape[1] != data.num_episodes:
        raise ValueError(
            f"next_actions must be [P, {data.size}, A] and start_actions [P, "
            f"{data.num_episodes}, A]; got {next_actions.shape} and {start_actions.shape}"
        )

    # Inputs as the network sees them: standardized observations, actions in [-1, 1],
    # rewards scaled so that values are of order one.
    mean = observations.mean(axis=0)
    std = observations.std(axis=0) + 1e-3
    if data.info.action_low is not None:
        low = np.asarray(data.info.action_low, np.float32)
        high = np.asarray(data.info.action_high, np.float32)
    else:
        low = np.minimum(data.actions.min(axis=0), -1.0).astype(np.float32)
        high = np.maximum(data.actions.max(axis=0), 1.0).astype(np.float32)
    rewards = np.asarray(data.rewards, np.float64)
    scale = (1.0 - config.discount) / max(float(np.abs(rewards).mean()), 1e-8)
    device_data = {
        "observations": jnp.asarray((observations - mean) / std),
        "next_observations": jnp.asarray((next_observations - mean) / std),
        "actions": jnp.asarray(_actions_to_unit(np.asarray(data.actions), low, high)),
        "rewards": jnp.asarray((rewards * scale).astype(np.float32)),
        "terminations": jnp.asarray(np.asarray(data.terminations, np.float32)),
    }
    unit_next = _actions_to_unit(next_actions, low, high)
    unit_start = _actions_to_unit(start_actions, low, high)
    start_norm = ((start_observations - mean) / std).astype(np.float32)

    # Fits: every policy x every resample (or the full data once).
    rng = np.random.default_rng(config.seed)
    bootstrap = config.fits_per_policy(num_policies)
    num_fits = max(bootstrap, 1)
    resamples = (
        [bootstrap_rows(starts, lengths, data.size, rng) for _ in range(bootstrap)]
        if bootstrap > 0
        else [(np.arange(data.size, dtype=np.int32), np.ones(len(starts), np.int64))]
    )
    rows = np.stack([r for r, _ in resamples])  # [K, N]
    counts = np.stack([c for _, c in resamples]).astype(np.float64)  # [K, E]
    fit_policy = np.repeat(np.arange(num_policies), num_fits)  # [M]
    fit_resample = np.tile(np.arange(num_fits), num_policies)  # [M]
    num = len(fit_policy)
    weights = counts[fit_resample]

    chunk = min(config.check_every, config.updates)
    while config.updates % chunk:
        chunk -= 1
    init, run_chunk, value_fn = _build_fit(config, data.observation_dim, data.action_dim, chunk)
    key = jax.random.PRNGKey(config.seed)
    key, init_key = jax.random.split(key)
    carry = init(jax.random.split(init_key, num))
    all_rows = jnp.asarray(rows)
    all_next = jnp.asarray(unit_next)
    resample_index = jnp.asarray(fit_resample, jnp.int32)
    policy_index = jnp.asarray(fit_policy, jnp.int32)
    start_batch = jnp.broadcast_to(start_norm, (num, *start_norm.shape))
    start_unit = jnp.asarray(unit_start[fit_policy])

    def estimates(params) -> np.ndarray:
        """Every fit's value estimate in reward units, ``[P, K]``."""
        q0 = np.asarray(value_fn(params, start_batch, start_unit), np.float64)  # [M, E]
        fits = (q0 * weights).sum(axis=1) / weights.sum(axis=1) / scale
        return fits.reshape(num_policies, num_fits)

    loss, history, done = None, [], 0
    while done < config.updates:
        key, chunk_key = jax.random.split(key)
        keys = jax.random.split(chunk_key, num)
        carry, loss = run_chunk(
            carry, keys, device_data, all_rows, resample_index, policy_index, all_next
        )
        done += chunk
        history.append((done, estimates(carry[0]).mean(axis=1)))
        if progress is not None:
            progress(done, config.updates)
        if _settled(history, config):
            break
    fits = estimates(carry[0])
    alpha = (1.0 - config.confidence) / 2.0
    low_q, high_q = np.quantile(fits, [alpha, 1.0 - alpha], axis=1)
    behavior = float(discounted_episode_returns(data, config.discount).mean())
    return FQEResult(
        value=fits.mean(axis=1),
        low=low_q,
        high=high_q,
        fits=fits,
        behavior_value=behavior,
        discount=config.discount,
        loss=np.asarray(loss).reshape(num_policies, num_fits),
        updates=done,
        history=[(n, v.tolist()) for n, v in history],
        critic=FittedQ(
            params=carry[0],
            mean=jnp.asarray(mean, jnp.float32),
            std=jnp.asarray(std, jnp.float32),
            low=jnp.asarray(low),
            high=jnp.asarray(high),
            scale=float(scale),
            fit_policy=tuple(int(p) for p in fit_policy),
            hidden_dims=tuple(config.hidden_dims),
            layer_norm=config.layer_norm,
        ),
    )


def _settled(history: list, config: FQEConfig) -> bool:
    """Whether the estimates held still over the last ``settle_window`` updates: no
    policy's moved by more than ``tolerance`` x the mean absolute estimate, and no two
    estimates further apart than that changed places (see :class:`FQEConfig`)."""
    if config.tolerance is None or not history:
        return False
    done, now = history[-1]
    if done < config.min_updates or done >= config.updates:
        return False
    then = [v for n, v in history if n <= done - config.settle_window]
    if not then:
        return False
    before = then[-1]
    moved = float(np.max(np.abs(now - before)))
    size = float(np.mean(np.abs(now))) + 1e-8
    # Estimates closer than the tolerance may trade places; no pair further apart may.
    apart = np.abs(now[:, None] - now[None, :]) > config.tolerance * size
    swapped = np.sign(now[:, None] - now[None, :]) != np.sign(before[:, None] - before[None, :])
    return moved <= config.tolerance * size and not np.any(apart & swapped)
