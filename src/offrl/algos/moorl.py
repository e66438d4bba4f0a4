"""MOORL: meta offline-online RL, SAC with Reptile updates across two buffers
(Chaudhary, Sujit & Kumar, 2025, arXiv 2506.09574).

MOORL needs no offline pre-training: it learns online from scratch beside a
dataset (``offrl finetune moorl --dataset D``) and keeps a *meta* actor and
critic that absorb what is learned from each buffer in turn. A meta epoch:

1. pick the source buffer: the offline data with probability ``p``
   (``offline_probability``), else the online replay;
2. start the *fast* weights from the meta weights, ``theta <- theta_meta``;
3. take ``K`` (``inner_steps``) SAC updates of the fast actor, critics and
   temperature on batches from that buffer only;
4. move the meta weights towards the result (Reptile)::

       theta_meta <- theta_meta + beta * (theta - theta_meta)

   for the actor and the critics (``beta``: ``meta_step_size``).

The meta actor acts (collection, evaluation, export). With ``beta = 1`` MOORL
is SAC whose batches alternate between the buffers every ``K`` updates; a
smaller ``beta`` keeps the meta weights an average of what either buffer alone
would teach. The SAC inside is :mod:`offrl.algos.sac` unchanged (clipped double
Q, automatic temperature, entropy backup); its target critics follow the fast
critics by Polyak averaging and its Adam moments carry over between epochs.

The batches: the interaction loop samples every batch half offline, half
online (RLPD's symmetric sampling, ``offline_ratio = 0.5``, offline rows
first); an update trains on the half of its epoch's source. A batch of 256 is
therefore 128 rows from one buffer.

Settings. The paper's code is not released and its K, beta and choice
probability were not found (CAPABILITIES row 38; a third-party review and the
abstract were read). Chosen here: ``p = 0.5`` (neither buffer favoured, as in
RLPD's sampling), ``K = 4`` (a few inner steps, Reptile's usual range, short
enough that the online buffer's newest data is reached within a few
environment steps at UTD 1) and ``beta = 0.5`` (half-way, so a single epoch on
either buffer cannot overwrite the other's contribution). SAC's own settings
are :mod:`offrl.algos.sac`'s, and the warm-ups RLPD's (5,000 random steps).

Deviations (from the paper as described; there is no code to compare with): K,
beta and p are the choices above; the temperature and the target critics are
the fast learner's, not meta-averaged (the description names only the actor and
the critic); an epoch's batches are half the loop's batch size; the meta actor,
not the fast one, collects the online data.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import sac
from offrl.core.registry import OnlineSpec

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="ratio", random_steps=5000, learning_starts=5000)
#: The meta weights move by the Reptile step, not by an optimizer (one object, so
#: states built by separate ``init`` calls share their pytree structure).
_META = optax.identity()


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """MOORL settings: SAC's plus the meta update's."""

    inner_steps: int = 4
    """K: SAC updates on one buffer per meta epoch."""
    meta_step_size: float = 0.5
    """beta: the Reptile step of the meta actor and critics towards the fast weights."""
    offline_probability: float = 0.5
    """p: the chance that a meta epoch trains on the offline data (else online)."""


@struct.dataclass
class State:
    actor: TrainState
    """The meta actor (it acts; its optimizer is not used)."""
    critic: TrainState
    """The meta critics (their optimizer is not used)."""
    fast: sac.State
    """The fast SAC weights of the current epoch, with temperature, targets and optimizers."""
    source: jax.Array
    """1.0 while the current epoch trains on the offline data, 0.0 on the online data."""
    key: jax.Array
    step: jax.Array


def _check(config: Config) -> None:
    if config.inner_steps < 1:
        raise ValueError(f"inner_steps must be >= 1, got {config.inner_steps}")
    if not 0.0 < config.meta_step_size <= 1.0:
        raise ValueError(f"meta_step_size must be in (0, 1], got {config.meta_step_size}")
    if not 0.0 <= config.offline_probability <= 1.0:
        raise ValueError(f"offline_probability must be in [0, 1], got {config.offline_probability}")


def init(config: Config, example_batch, key: jax.Array) -> State:
    _check(config)
    key, fast_key = jax.random.split(key)
    fast = sac.init(config, example_batch, fast_key)
    return State(
        actor=TrainState.create(apply_fn=fast.actor.apply_fn, params=fast.actor.params, tx=_META),
        critic=TrainState.create(
            apply_fn=fast.critic.apply_fn, params=fast.critic.params, tx=_META
        ),
        fast=fast,
        source=jnp.ones((), jnp.float32),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def online_config(config: Config, finetune_config=None) -> Config:
    """MOORL reads each batch as an offline half and an online half: check the loop
    samples them that way."""
    if finetune_config is not None:
        if finetune_config.mixing not in ("auto", "ratio") or finetune_config.offline_ratio != 0.5:
            raise ValueError(
                "moorl trains on the offline or the online half of every batch: keep "
                "--mixing ratio with --offline-ratio 0.5 (the defaults)"
            )
        if finetune_config.batch_size % 2:
            raise ValueError(
                f"moorl needs an even --batch-size (two halves), got {finetune_config.batch_size}"
            )
    return config


def source_half(batch, offline):
    """The first (offline) half of every field when ``offline`` is 1, else the second."""

    def pick(x):
        half = x.shape[0] // 2
        return jnp.where(offline > 0.5, x[:half], x[half : 2 * half])

    return jax.tree.map(pick, batch)


def _towards(meta, fast, beta: float):
    return jax.tree.map(lambda m, f: m + beta * (f - m), meta, fast)


def update(state: State, batch, config: Config):
    """One inner SAC step; the meta step after every ``K``-th."""
    key, choice_key = jax.random.split(state.key)
    first = state.step % config.inner_steps == 0
    drawn = jax.random.bernoulli(choice_key, config.offline_probability).astype(jnp.float32)
    source = jnp.where(first, drawn, state.source)
    fast, metrics = sac.update(state.fast, source_half(batch, source), config)

    last = (state.step + 1) % config.inner_steps == 0
    meta_actor = _towards(state.actor.params, fast.actor.params, config.meta_step_size)
    meta_critic = _towards(state.critic.params, fast.critic.params, config.meta_step_size)

    def after_last(meta, old_meta):
        return jax.tree.map(lambda m, o: jnp.where(last, m, o), meta, old_meta)

    actor_params = after_last(meta_actor, state.actor.params)
    critic_params = after_last(meta_critic, state.critic.params)
    # The next epoch's fast weights start from the meta weights.
    fast = fast.replace(
        actor=fast.actor.replace(params=after_last(meta_actor, fast.actor.params)),
        critic=fast.critic.replace(params=after_last(meta_critic, fast.critic.params)),
    )
    metrics = {**metrics, "moorl/offline_epoch": source}
    state = state.replace(
        actor=state.actor.replace(params=actor_params),
        critic=state.critic.replace(params=critic_params),
        fast=fast,
        source=source,
        key=key,
        step=state.step + 1,
    )
    return state, metrics


def act(state: State, observations, key, deterministic: bool, config: Config):
    """The meta actor's tanh-Gaussian action."""
    return sac.act(state, observations, key, deterministic, config)
