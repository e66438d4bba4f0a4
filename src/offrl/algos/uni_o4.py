"""Uni-O4's offline stage (Lei et al., ICLR 2024): an ensemble of BC policies improved
by PPO-clip steps, each step kept only when model-based OPE says it improved.

As the released ``main.py``, ``BC_ensemble.py`` and ``abppo.py`` (Lei-Kun/Uni-O4) run it.

Before the updates (:func:`pretrain`), on the training data:

- ``V(s)`` regressed on the discounted Monte Carlo return-to-go (512x3, Adam 1e-4);
- ``Q(s, a)`` of the behavior by SARSA, ``y = r + gamma (1 - d) Q_targ(s', a')``
  with the data's next action (1024x2, Adam 1e-4, Polyak targets);
- ``K`` Gaussian BC policies (256x3, mean through tanh, a free log-std), trained on
  the same minibatches with the released "diversity" loss::

      L_i = -log pi_i(a|s) - alpha (log pi_i(a|s) - max_j log pi_j(a|s)),  alpha = 0.1

  (``max_j`` is detached, so the term rescales policy i's gradient by ``1 + alpha``;
  the policies differ by their initialization);
- a dynamics ensemble (:mod:`offrl.model.ensemble`, 7 models, 5 elites) and the
  AM-Q of every BC policy: the behavior ``Q`` averaged along the policy's rollouts in
  the model from ``amq_starts`` data states for ``amq_horizon`` steps (Uni-O4's
  ``dynamics_eval``; the scores of :func:`offrl.model.rollouts.score_policies`).

Every update then improves each policy ``i`` by PPO-clip against its reference
``pi_i_old`` (at first its BC policy)::

    a ~ pi_i_old(.|s),   A = Q(s, a) - V(s),  standardized over the batch, then
                         weighted by omega where A > 0 and 1 - omega elsewhere
    L_i = -E min(rho A, clip(rho, 1 - eps, 1 + eps) A),  rho = pi_i(a|s) / pi_i_old(a|s)

with the learning rate decayed linearly to 0 over the run, ``eps`` decayed linearly
for the first 200 updates and then held (the released schedule), and each policy's
gradient clipped to norm 0.5. Every ``gate_every`` updates the gate decides: a policy
whose AM-Q beats its best so far becomes its new reference (and best), otherwise the
reference stays (the gate refused the step).
``gate=False`` replaces every reference at every gate (ungated multi-step BPPO: the
ablation). The acting policy is the reference with the highest AM-Q: the one OPE
approved.

Defaults are the released ones (K 4, omega 0.7, eps 0.25, PPO Adam 1e-4, batch 512,
AM-Q every 100 updates from 512 states), except the step counts of the fits before
the updates, which the released code sets to 2e6 (V, Q) and 4e5 (BC) and which are
options here. Deviations: the AM-Q rollouts are spread over the gate window (the
policies at a window's first update are its candidates, every update advances their
rollouts ``ceil(amq_horizon / gate_every)`` model steps, the window's last update
decides; released: the current policies are rolled out at once every 100 updates), so a
decision concerns the policies of one window earlier: seeds train under ``vmap``, where a
conditional rollout every 100th update would run at every update; the critic's target
moves by Polyak averaging every update (released: every 2 updates); AM-Q rolls out
``amq_horizon`` steps (released: up to 1,000); the online PPO stage (``ppo_finetune``) is
not implemented.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import mopo
from offrl.data.dataset import Dataset, num_rows
from offrl.data.returns import dataset_returns_to_go, next_actions
from offrl.envs.termination import RULES
from offrl.model import ensemble
from offrl.nn import GaussianPolicy, QNetwork, VNetwork, gaussian_log_prob

DEFAULT_REWARD_SCALING = "none"


@dataclasses.dataclass(frozen=True)
class Config(ensemble.ModelFields):
    """Uni-O4 offline settings (the released defaults but the pre-fit step counts)."""

    num_policies: int = 4
    """K: policies in the ensemble."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of each policy."""
    discount: float = 0.99
    """Discount of V, Q and AM-Q."""
    bc_steps: int = 100_000
    """Updates of the BC ensemble before PPO (released: 400,000)."""
    bc_learning_rate: float = 1e-4
    """Adam learning rate of the BC policies."""
    diversity: float = 0.1
    """alpha of the BC ensemble's diversity term."""
    value_steps: int = 100_000
    """Updates of V's Monte Carlo regression (released: 2,000,000)."""
    value_hidden_dims: tuple[int, ...] = (512, 512, 512)
    """Hidden widths of V."""
    value_learning_rate: float = 1e-4
    """Adam learning rate of V."""
    critic_steps: int = 100_000
    """Updates of the SARSA critic (released: 2,000,000)."""
    critic_hidden_dims: tuple[int, ...] = (1024, 1024)
    """Hidden widths of Q."""
    critic_learning_rate: float = 1e-4
    """Adam learning rate of Q."""
    tau_polyak: float = 0.005
    """Polyak rate of Q's target."""
    fit_batch_size: int = 512
    """Minibatch of the fits before PPO (BC, V, Q)."""
    learning_rate: float = 1e-4
    """Initial Adam learning rate of the PPO steps (decayed linearly to 0 over the run)."""
    clip_ratio: float = 0.25
    """eps of PPO's clip at the first update."""
    clip_decay_updates: int = 200
    """eps decays linearly (towards 0 at the run's end) for this many updates, then holds."""
    omega: float = 0.7
    """Weight of positive advantages (1 - omega for the others)."""
    max_grad_norm: float = 0.5
    """Clip of each policy's gradient norm."""
    gate: bool = True
    """Keep a PPO step only when AM-Q improved (False: ungated, every step kept)."""
    gate_every: int = 100
    """Updates between gates."""
    amq_horizon: int = 100
    """Model steps of each AM-Q rollout (released: up to 1,000)."""
    amq_starts: int = 512
    """Data states each AM-Q rollout starts from."""
    decay_steps: int | None = None
    """Steps of the linear decays; the trainer sets it to the run length."""

    def __post_init__(self):
        if self.num_policies < 1 or self.gate_every < 1 or self.amq_horizon < 1:
            raise ValueError("num_policies, gate_every and amq_horizon must be >= 1")
        if self.termination != "auto" and self.termination not in RULES:
            raise ValueError(
                f"termination '{self.termination}' is unknown; choose auto or one of "
                f"{', '.join(RULES)}"
            )
        if not 0.0 < self.omega < 1.0:
            raise ValueError(f"omega must be in (0, 1), got {self.omega}")
        self.model_spec().check()


@struct.dataclass
class State:
    actor: TrainState  # K policies: every leaf has a leading [K] axis
    reference_params: dict  # pi_old of each policy: the last one the gate accepted
    v_params: dict  # V on Monte Carlo returns
    q_params: dict  # the behavior's Q (SARSA)
    target_q_params: dict
    model: ensemble.Ensemble
    observation_mean: jax.Array  # the run's standardization, for the termination rule
    observation_std: jax.Array
    starts: jax.Array  # [amq_starts, D] AM-Q's start states (standardized)
    best_amq: jax.Array  # [K] the references' AM-Q
    candidate_params: dict  # the policies the running AM-Q probe evaluates
    probe_obs: jax.Array  # [K, amq_starts, D] the probe's rollout states
    probe_alive: jax.Array  # [K, amq_starts]
    probe_q: jax.Array  # [K] sum of Q over the probe's alive steps
    probe_count: jax.Array  # [K] its alive steps
    probe_key: jax.Array  # the model noise of every probe (the same for every window)
    accepted: jax.Array  # gate decisions so far: references replaced ...
    refused: jax.Array  # ... and kept
    key: jax.Array
    step: jax.Array


def policy_module(config: Config, action_dim: int) -> GaussianPolicy:
    """The released GaussPolicyMLP: mean through tanh, a free log-std in [-20, 2]."""
    return GaussianPolicy(
        action_dim,
        config.hidden_dims,
        tanh_squash=False,
        state_dependent_std=False,
        log_std_min=-20.0,
        log_std_max=2.0,
    )


def _schedule(config: Config):
    if config.decay_steps:
        return optax.linear_schedule(config.learning_rate, 0.0, config.decay_steps)
    return config.learning_rate


def init(config: Config, example_batch, key: jax.Array) -> State:
    observations, actions = example_batch["observations"], example_batch["actions"]
    key, policy_key, value_key, critic_key, model_key = jax.random.split(key, 5)
    module = policy_module(config, actions.shape[-1])
    params = jax.vmap(module.init, in_axes=(0, None))(
        jax.random.split(policy_key, config.num_policies), observations
    )
    value = VNetwork(config.value_hidden_dims).init(value_key, observations)
    critic = QNetwork(config.critic_hidden_dims).init(critic_key, observations, actions)
    dim = observations.shape[-1]
    return State(
        actor=TrainState.create(
            apply_fn=module.apply, params=params, tx=optax.adam(_schedule(config))
        ),
        reference_params=params,
        v_params=value,
        q_params=critic,
        target_q_params=critic,
        model=ensemble.init(config.model_spec(), dim, actions.shape[-1], model_key),
        observation_mean=jnp.zeros(dim, jnp.float32),
        observation_std=jnp.ones(dim, jnp.float32),
        starts=jnp.zeros((config.amq_starts, dim), jnp.float32),
        best_amq=jnp.full(config.num_policies, -jnp.inf, jnp.float32),
        candidate_params=params,
        probe_obs=jnp.zeros((config.num_policies, config.amq_starts, dim), jnp.float32),
        probe_alive=jnp.zeros((config.num_policies, config.amq_starts), bool),
        probe_q=jnp.zeros(config.num_policies, jnp.float32),
        probe_count=jnp.zeros(config.num_policies, jnp.float32),
        probe_key=jax.random.fold_in(key, 99),
        accepted=jnp.zeros((), jnp.int32),
        refused=jnp.zeros((), jnp.int32),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def prepare_dataset(dataset, config: Config):
    """The training data with each step's Monte Carlo return-to-go (V's target) and
    next action (Q's SARSA target), in the networks' (scaled) reward units."""
    return dataset.replace(
        mc_returns=np.asarray(dataset_returns_to_go(dataset, config.discount)),
        next_actions=next_actions(dataset),
    )


# --------------------------------------------------------------------------- losses
def _log_probs(state_or_apply, params, observations, actions) -> jax.Array:
    """``log pi_k(a|s)`` of every policy: ``[K, B]`` (``actions [B, A]`` or ``[K, B, A]``)."""
    mean, log_std = jax.vmap(state_or_apply, in_axes=(0, None))(params, observations)
    return gaussian_log_prob(mean, log_std, actions)


def bc_ensemble_loss(apply_fn, params, observations, actions, diversity: float):
    """The released joint BC loss, summed over the K policies (each mean over the batch)."""
    log_prob = _log_probs(apply_fn, params, observations, actions)  # [K, B]
    best = jax.lax.stop_gradient(log_prob.max(axis=0))
    per_policy = (-log_prob - diversity * (log_prob - best)).mean(axis=1)
    return per_policy.sum(), per_policy


def weighted_advantages(advantages: jax.Array, omega: float) -> jax.Array:
    """Standardize each policy's advantages over the batch (``[K, B]``), then weight the
    positive ones by ``omega`` and the rest by ``1 - omega``."""
    mean = advantages.mean(axis=1, keepdims=True)
    std = advantages.std(axis=1, ddof=1, keepdims=True)
    standardized = (advantages - mean) / (std + 1e-8)
    return jnp.where(standardized > 0, omega, 1.0 - omega) * standardized


def ppo_clip_loss(log_prob, old_log_prob, advantages, clip_ratio):
    """``-E min(rho A, clip(rho, 1 - eps, 1 + eps) A)`` per policy (``[K, B]`` inputs),
    and the fraction of clipped ratios."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    per_sample = -jnp.minimum(ratio * advantages, clipped * advantages)
    return per_sample.mean(axis=1), (jnp.abs(ratio - 1.0) > clip_ratio).mean()


def clip_ratio_at(step, config: Config):
    """eps after ``step`` updates: linear decay for ``clip_decay_updates``, then held."""
    if not config.decay_steps:
        return jnp.asarray(config.clip_ratio, jnp.float32)
    done = jnp.minimum(step, config.clip_decay_updates).astype(jnp.float32)
    return config.clip_ratio * (1.0 - done / config.decay_steps)


def gate(best, candidate, reference_params, params, gated: bool):
    """The gate: each policy whose AM-Q ``candidate`` beats its ``best`` becomes its new
    reference. Returns ``(reference_params, best, improved [K])``; ungated, every
    policy is replaced (and ``best`` follows it)."""
    improved = candidate > best if gated else jnp.ones_like(candidate, bool)

    def pick(new, old):
        mask = improved.reshape(improved.shape + (1,) * (new.ndim - 1))
        return jnp.where(mask, new, old)

    references = jax.tree_util.tree_map(pick, params, reference_params)
    return references, jnp.where(improved, candidate, best), improved


def probe_steps(config: Config) -> int:
    """Model steps of the AM-Q probe per update: the horizon spread over a gate window."""
    return -(-config.amq_horizon // config.gate_every)


def probe(state: State, candidate, probe_state, position, config: Config):
    """Advance the AM-Q rollouts of the K ``candidate`` policies (their mean actions) by
    :func:`probe_steps` model steps: the steps ``position * n ..`` of the window (only
    those below ``amq_horizon`` count). ``probe_state = (obs [K, B, D], alive [K, B],
    q_sum [K], count [K])``; row b of every policy draws the same noise and elite, and
    model step j the same noise in every window (common random numbers)."""
    spec = config.model_spec()
    critic = QNetwork(config.critic_hidden_dims)
    terminated = mopo.terminated_fn(state, config)
    n = probe_steps(config)

    def one(carry, j):
        obs, alive, q_sum, count = carry
        mean, _ = jax.vmap(state.actor.apply_fn)(candidate, obs)
        actions = jnp.clip(mean, -1.0, 1.0)
        q = jax.vmap(lambda o, a: critic.apply(state.q_params, o, a))(obs, actions)  # [K, B]
        counted = (alive & (j < config.amq_horizon)).astype(jnp.float32)
        key = jax.random.fold_in(state.probe_key, j)
        next_obs, _ = jax.vmap(lambda o, a: ensemble.step(spec, state.model, o, a, key)[:2])(
            obs, actions
        )
        done = terminated(obs, actions, next_obs)
        return (next_obs, alive & ~done, q_sum + (q * counted).sum(1), count + counted.sum(1)), None

    carry, _ = jax.lax.scan(one, probe_state, position * n + jnp.arange(n))
    return carry


def fresh_probe(state: State, config: Config):
    """The probe at a window's start: every rollout at its start state, nothing summed."""
    num = config.num_policies
    return (
        jnp.broadcast_to(state.starts, (num, *state.starts.shape)),
        jnp.ones((num, state.starts.shape[0]), bool),
        jnp.zeros(num, jnp.float32),
        jnp.zeros(num, jnp.float32),
    )


def amq(state: State, params, config: Config) -> jax.Array:
    """AM-Q of the K policies ``params`` (a whole probe window at once): ``[K]``."""
    carry = fresh_probe(state, config)
    carry, _ = jax.lax.scan(
        lambda c, w: (probe(state, params, c, w, config), None),
        carry,
        jnp.arange(config.gate_every),
    )
    return carry[2] / jnp.maximum(carry[3], 1.0)


# --------------------------------------------------------------------------- update
def update(state: State, batch, config: Config):
    key, noise_key = jax.random.split(state.key)
    observations = batch["observations"]
    apply_fn = state.actor.apply_fn
    old_mean, old_log_std = jax.vmap(apply_fn, in_axes=(0, None))(
        state.reference_params, observations
    )
    actions = old_mean + jnp.exp(old_log_std) * jax.random.normal(noise_key, old_mean.shape)
    critic = QNetwork(config.critic_hidden_dims)
    q = jax.vmap(lambda a: critic.apply(state.q_params, observations, a))(actions)  # [K, B]
    v = VNetwork(config.value_hidden_dims).apply(state.v_params, observations)  # [B]
    advantages = weighted_advantages(q - v, config.omega)
    old_log_prob = gaussian_log_prob(old_mean, old_log_std, actions)
    clip_ratio = clip_ratio_at(state.step, config)

    def loss_fn(params):
        mean, log_std = jax.vmap(apply_fn, in_axes=(0, None))(params, observations)
        log_prob = gaussian_log_prob(mean, log_std, actions)
        per_policy, clipped = ppo_clip_loss(log_prob, old_log_prob, advantages, clip_ratio)
        return per_policy.sum(), (per_policy, clipped)

    grads, (per_policy, clipped) = jax.grad(loss_fn, has_aux=True)(state.actor.params)
    # Each policy's gradient clipped to its own norm (the released per-policy optimizers).
    leaves = jax.tree_util.tree_leaves(grads)
    norms = jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in leaves))
    scale = jnp.minimum(1.0, config.max_grad_norm / (norms + 1e-6))
    grads = jax.tree_util.tree_map(
        lambda g: g * scale.reshape(scale.shape + (1,) * (g.ndim - 1)), grads
    )
    actor = state.actor.apply_gradients(grads=grads)
    step = state.step + 1

    # The gate. Under the trainer's vmap over seeds a lax.cond on the step would run its
    # branch every update, so the AM-Q rollouts are spread over the gate window instead:
    # the policies at the window's first update are the candidates, each update advances
    # their probe a few model steps, and the window's last update decides.
    position = state.step % config.gate_every
    first = position == 0

    def at_first(new, old):
        return jax.tree_util.tree_map(lambda a, b: jnp.where(first, a, b), new, old)

    candidate = at_first(actor.params, state.candidate_params)
    probe_state = at_first(
        fresh_probe(state, config),
        (state.probe_obs, state.probe_alive, state.probe_q, state.probe_count),
    )
    probe_state = probe(state, candidate, probe_state, position, config)
    last = position == config.gate_every - 1
    score = probe_state[2] / jnp.maximum(probe_state[3], 1.0)
    gated_refs, gated_best, improved = gate(
        state.best_amq, score, state.reference_params, candidate, config.gate
    )
    references = jax.tree_util.tree_map(
        lambda a, b: jnp.where(last, a, b), gated_refs, state.reference_params
    )
    best = jnp.where(last, gated_best, state.best_amq)
    taken = jnp.where(last, improved.sum(), 0).astype(jnp.int32)
    accepted = state.accepted + taken
    refused = state.refused + jnp.where(last, config.num_policies - taken, 0).astype(jnp.int32)
    state = state.replace(
        actor=actor,
        reference_params=references,
        best_amq=best,
        candidate_params=candidate,
        probe_obs=probe_state[0],
        probe_alive=probe_state[1],
        probe_q=probe_state[2],
        probe_count=probe_state[3],
        accepted=accepted,
        refused=refused,
        key=key,
        step=step,
    )
    return state, {
        "ppo/loss": per_policy.mean(),
        "ppo/clip_fraction": clipped,
        "ppo/clip_ratio": clip_ratio,
        "ppo/q_minus_v": (q - v[None]).mean(),
        # (0 until the references have an AM-Q: pretrain gives them one)
        "gate/best_amq": jnp.where(jnp.isfinite(best), best, 0.0).max(),
        "gate/accepted": accepted.astype(jnp.float32),
        "gate/refused": refused.astype(jnp.float32),
    }


def act(state: State, observations, key, deterministic: bool, config: Config):
    """The reference policy of highest AM-Q (the last step its gate accepted)."""
    chosen = jnp.argmax(state.best_amq)
    params = jax.tree_util.tree_map(lambda x: x[chosen], state.reference_params)
    mean, log_std = state.actor.apply_fn(params, observations)
    if deterministic:
        return jnp.clip(mean, -1.0, 1.0)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)


# ------------------------------------------------------------------ before training
def _regression(steps: int, step_fn, carry, keys, dataset, log, name: str, chunk: int = 1000):
    """Run ``step_fn(carry, key, dataset) -> (carry, loss)`` ``steps`` times for every
    seed (``keys [S, 2]``) in jitted chunks; logs the mean loss after every chunk."""

    def one_seed(c, k, data, n):
        return jax.lax.scan(lambda c, k: step_fn(c, k, data), c, jax.random.split(k, n))

    run = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, None, None)), static_argnums=3)
    done, loss = 0, None
    while done < steps:
        n = min(chunk, steps - done)
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, done)
        carry, losses = run(carry, keys, dataset, n)
        done += n
        loss = float(np.mean(np.asarray(losses)[:, -1]))
        if log is not None:
            log(done, {f"{name}/loss": loss})
    return carry, loss


@functools.lru_cache(maxsize=8)
def _fit_steps(config: Config, action_dim: int):
    """The per-seed update functions of the fits before PPO."""
    value_module = VNetwork(config.value_hidden_dims)
    critic_module = QNetwork(config.critic_hidden_dims)
    value_tx = optax.adam(config.value_learning_rate)
    critic_tx = optax.adam(config.critic_learning_rate)
    policy_tx = optax.adam(config.bc_learning_rate)
    module = policy_module(config, action_dim)

    def rows(dataset, key):
        idx = jax.random.randint(key, (config.fit_batch_size,), 0, num_rows(dataset))
        return {name: jnp.take(v, idx, axis=0) for name, v in dataset.step_fields().items()}

    def value_step(carry, key, dataset):
        params, opt = carry
        b = rows(dataset, key)

        def loss_fn(p):
            return jnp.mean((value_module.apply(p, b["observations"]) - b["mc_returns"]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = value_tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    def critic_step(carry, key, dataset):
        params, target, opt = carry
        b = rows(dataset, key)
        next_q = critic_module.apply(target, b["next_observations"], b["next_actions"])
        y = b["rewards"] + config.discount * (1.0 - b["terminations"]) * next_q

        def loss_fn(p):
            return jnp.mean((critic_module.apply(p, b["observations"], b["actions"]) - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = critic_tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
        target = jax.tree_util.tree_map(
            lambda t, o: (1.0 - config.tau_polyak) * t + config.tau_polyak * o, target, params
        )
        return (params, target, opt), loss

    def bc_step(carry, key, dataset):
        params, opt = carry
        b = rows(dataset, key)
        (loss, _), grads = jax.value_and_grad(bc_ensemble_loss, argnums=1, has_aux=True)(
            module.apply, params, b["observations"], b["actions"], config.diversity
        )
        updates, opt = policy_tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss / config.num_policies

    return value_step, critic_step, bc_step, value_tx, critic_tx, policy_tx


def pretrain(
    states: State, config: Config, dataset: Dataset, pre, keys: jax.Array, log=None
) -> tuple[State, dict]:
    """Fit V, Q, the BC ensemble and the dynamics ensemble of every seed (``keys
    [S, 2]``) on the (preprocessed) training data, then the BC policies' AM-Q (the
    gate's first bar). Returns the states and a summary."""
    action_dim = dataset.actions.shape[-1]
    value_step, critic_step, bc_step, value_tx, critic_tx, policy_tx = _fit_steps(
        config, action_dim
    )
    log_ = log or (lambda step, values: None)
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, None))
    value, value_loss = _regression(
        config.value_steps,
        value_step,
        (states.v_params, jax.vmap(value_tx.init)(states.v_params)),
        fold(keys, 11),
        dataset,
        log_,
        "value",
    )
    critic, critic_loss = _regression(
        config.critic_steps,
        critic_step,
        (states.q_params, states.q_params, jax.vmap(critic_tx.init)(states.q_params)),
        fold(keys, 12),
        dataset,
        log_,
        "critic",
    )
    params = states.actor.params
    bc, bc_loss = _regression(
        config.bc_steps,
        bc_step,
        (params, jax.vmap(policy_tx.init)(params)),
        fold(keys, 13),
        dataset,
        log_,
        "bc",
    )
    rows = num_rows(dataset)
    model, model_summary = ensemble.fit_dataset(config.model_spec(), dataset, keys, log=log)
    seeds = keys.shape[0]

    def tile(x):
        return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (seeds, *jnp.shape(x)))

    start_rows = jax.vmap(lambda k: jax.random.randint(k, (config.amq_starts,), 0, rows))(
        fold(keys, 14)
    )
    states = states.replace(
        v_params=value[0],
        q_params=critic[0],
        target_q_params=critic[1],
        actor=states.actor.replace(params=bc[0]),
        reference_params=bc[0],
        model=model,
        observation_mean=tile(pre.observation_mean),
        observation_std=tile(pre.observation_std),
        starts=jnp.asarray(dataset.observations)[start_rows],
    )
    initial = jax.jit(jax.vmap(lambda s: amq(s, s.reference_params, config)))(states)
    states = states.replace(best_amq=initial)
    summary = {
        "value_loss": value_loss,
        "critic_loss": critic_loss,
        "bc_loss": bc_loss,
        "model": model_summary,
        "initial_amq": np.asarray(initial).tolist(),
    }
    return states, summary
