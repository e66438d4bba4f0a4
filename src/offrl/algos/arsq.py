"""ARSQ: auto-regressive soft Q-learning over a coarse-to-fine discretized action
(Liu, Gao, Liao, Yu & Wang, 2025, "Learning from Suboptimal Data in Continuous
Control via Auto-Regressive Soft Q-Network"; CAPABILITIES row 20).

**Coarse to fine.** Every action dimension starts with the interval ``[-1, 1]``;
at each of ``L`` levels the current interval is cut into ``B`` bins, one bin is
chosen and becomes the next level's interval (CQN's hierarchy, Seo et al. 2024).
The action is the centre of the last bin (:func:`decode`; :func:`encode` maps a
continuous action to its bins, so data actions can be learned from).

**Auto-regressive soft advantages.** At level ``l`` the critic gives a soft value
``V_l(s, a^{<l})`` (``a^{<l}``: the centres chosen at coarser levels) and, for each
dimension ``d``, logits over its bins conditioned on the bins already chosen
for dimensions ``< d`` at that level. The *soft advantages*
``A_ld = f - alpha logsumexp(f / alpha)`` satisfy ``alpha logsumexp(A_ld / alpha) =
0``, so::

    Q_l(s, a) = V_l(s, a^{<l}) + sum_d A_ld(s, a^{<l}, a^l_{<d}, a^l_d)

is a soft Q-function whose soft value is exactly ``V_l`` and whose Boltzmann
policy factorises dimension by dimension, ``pi(a^l_d | ...) = exp(A_ld / alpha)``.
With ``autoregressive = False`` the logits of a dimension ignore the others
(CQN's independent dimensions): the baseline of the paper.

**Learning.** Every level regresses its ``Q_l`` at the data's action (its bins
by :func:`encode`) onto one target::

    y = r + gamma * (1 - terminated) * V_0^targ(s')

(``V_0``, the coarsest level's soft value, is the soft value of the whole
hierarchy); the target network follows by Polyak averaging. Demonstrations sit in
the replay buffer with the online data (``union`` mixing, ``offrl finetune arsq
--dataset DEMOS``). Acting samples each level's dimensions in order from the
soft policy (its argmax when deterministic) and, while collecting, adds
Gaussian noise to the decoded action.

Settings: 3 levels of 5 bins (CQN's; ARSQ's levels and bins were not read),
256x256 torso, Adam 3e-4, gamma 0.99, Polyak 0.005, alpha 0.01, collection
noise 0.1. Deviations: one critic and its target instead of a clipped pair; all
levels share the coarsest level's target value (CQN bootstraps each level from
its own); no auxiliary demonstration loss; state observations only. The
paper's network and losses were read from its abstract and summaries only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.core.registry import OnlineSpec
from offrl.core.state import create_train_state, polyak
from offrl.nn.mlp import MLP

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="union", random_steps=0, learning_starts=1000)


@dataclasses.dataclass(frozen=True)
class Config:
    """ARSQ settings."""

    levels: int = 3
    """L: coarse-to-fine levels per action dimension."""
    bins: int = 5
    """B: bins per level."""
    autoregressive: bool = True
    """Condition each dimension's advantages on the bins already chosen for the earlier
    dimensions (False: independent dimensions, CQN's)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the state torso and of the value and advantage heads."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target network."""
    temperature: float = 0.01
    """alpha of the soft advantages and the soft policy."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the decoded action while collecting."""


# ------------------------------------------------------------ discretization
def encode(actions, levels: int, bins: int):
    """The bin of every level for actions ``[..., A]`` in ``[-1, 1]``: ``[..., L, A]``."""
    low = -jnp.ones_like(actions)
    high = jnp.ones_like(actions)
    indices = []
    for _ in range(levels):
        width = (high - low) / bins
        index = jnp.clip(jnp.floor((actions - low) / width), 0, bins - 1)
        indices.append(index.astype(jnp.int32))
        low = low + index * width
        high = low + width
    return jnp.stack(indices, axis=-2)


def decode(indices, bins: int):
    """``(actions [..., A], centres [..., L, A], coarse [..., L, A])`` for bins
    ``[..., L, A]``: the last level's bin centre, the centre chosen at every level and
    the centre of the interval each level starts from (0 at the first)."""
    low = -jnp.ones(indices.shape[:-2] + indices.shape[-1:], jnp.float32)
    high = jnp.ones_like(low)
    centres, coarse = [], []
    for level in range(indices.shape[-2]):
        coarse.append(0.5 * (low + high))
        width = (high - low) / bins
        index = indices[..., level, :].astype(jnp.float32)
        low = low + index * width
        high = low + width
        centres.append(0.5 * (low + high))
    return centres[-1], jnp.stack(centres, axis=-2), jnp.stack(coarse, axis=-2)


# ------------------------------------------------------------------ network
class ARSQNetwork(nn.Module):
    """Values ``[B, L]`` and advantage logits ``[B, L, A, bins]``."""

    action_dim: int
    levels: int
    bins: int
    hidden_dims: Sequence[int]
    autoregressive: bool

    @nn.compact
    def __call__(self, observations, coarse, chosen):
        """``coarse``: ``[B, L, A]`` centres each level starts from; ``chosen``:
        ``[B, L, A]`` centres chosen at each level (read only for earlier dimensions)."""
        batch, levels, dims = observations.shape[0], self.levels, self.action_dim
        features = MLP(self.hidden_dims)(observations)  # [B, H]
        level_code = jnp.broadcast_to(jnp.eye(levels), (batch, levels, levels))
        level_input = jnp.concatenate(
            [jnp.repeat(features[:, None], levels, 1), coarse, level_code], axis=-1
        )
        values = MLP(self.hidden_dims, 1, name="value")(level_input)[..., 0]  # [B, L]
        earlier = jnp.tril(jnp.ones((dims, dims)), k=-1)  # [d, j]: 1 where j < d
        if not self.autoregressive:
            earlier = jnp.zeros_like(earlier)
        previous = chosen[:, :, None, :] * earlier  # [B, L, A(d), A(j)]
        head_input = jnp.concatenate(
            [
                jnp.broadcast_to(
                    level_input[:, :, None], (batch, levels, dims, level_input.shape[-1])
                ),
                jnp.broadcast_to(jnp.eye(dims), (batch, levels, dims, dims)),
                previous,
            ],
            axis=-1,
        )
        logits = MLP(self.hidden_dims, self.bins, name="advantage")(head_input)
        return values, logits


def soft_advantages(logits, temperature: float):
    """``A = f - alpha logsumexp(f / alpha)`` over the last (bins) axis."""
    return logits - temperature * jax.nn.logsumexp(logits / temperature, axis=-1, keepdims=True)


@struct.dataclass
class State:
    actor: TrainState
    """The soft Q-network; its Boltzmann policy is the policy (hence the name)."""
    target_params: dict
    key: jax.Array
    step: jax.Array
    action_dim: int = struct.field(pytree_node=False, default=1)


def _network(config: Config, action_dim: int) -> ARSQNetwork:
    return ARSQNetwork(
        action_dim, config.levels, config.bins, tuple(config.hidden_dims), config.autoregressive
    )


def init(config: Config, example_batch, key: jax.Array) -> State:
    if config.levels < 1 or config.bins < 2:
        raise ValueError(
            f"arsq needs levels >= 1 and bins >= 2, got {config.levels}, {config.bins}"
        )
    key, init_key = jax.random.split(key)
    observations = example_batch["observations"]
    action_dim = example_batch["actions"].shape[-1]
    zeros = jnp.zeros((observations.shape[0], config.levels, action_dim))
    network = _network(config, action_dim)
    params = network.init(init_key, observations, zeros, zeros)
    return State(
        actor=create_train_state(network, params, config.learning_rate),
        target_params=params,
        key=key,
        step=jnp.zeros((), jnp.int32),
        action_dim=int(action_dim),
    )


def q_values(apply_fn, params, observations, indices, config: Config):
    """``Q_l(s, a)`` ``[B, L]`` at bins ``[B, L, A]`` and the values ``V_l`` ``[B, L]``."""
    _, centres, coarse = decode(indices, config.bins)
    values, logits = apply_fn(params, observations, coarse, centres)
    advantages = soft_advantages(logits, config.temperature)  # [B, L, A, bins]
    taken = jnp.take_along_axis(advantages, indices[..., None], axis=-1)[..., 0]
    return values + taken.sum(axis=-1), values


def loss_fn(params, state: State, batch, config: Config):
    indices = encode(batch["actions"], config.levels, config.bins)
    q, _ = q_values(state.actor.apply_fn, params, batch["observations"], indices, config)
    zeros = jnp.zeros((batch["next_observations"].shape[0], config.levels, indices.shape[-1]))
    next_values, _ = state.actor.apply_fn(
        state.target_params, batch["next_observations"], zeros, zeros
    )
    target = batch["rewards"] + config.discount * (1.0 - batch["terminations"]) * next_values[:, 0]
    target = jax.lax.stop_gradient(target)
    loss = jnp.mean((q - target[:, None]) ** 2)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/target_mean": target.mean(),
    }


def update(state: State, batch, config: Config):
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.actor.params, state, batch, config)
    critic = state.actor.apply_gradients(grads=grads)
    return (
        state.replace(
            actor=critic,
            target_params=polyak(state.target_params, critic.params, config.tau),
            step=state.step + 1,
        ),
        metrics,
    )


def select_bins(state: State, observations, key, deterministic: bool, config: Config):
    """Bins ``[B, L, A]`` chosen level by level, dimension by dimension."""
    batch, dims = observations.shape[0], state.action_dim
    indices = jnp.zeros((batch, config.levels, dims), jnp.int32)
    for level in range(config.levels):
        for d in range(dims):
            _, centres, coarse = decode(indices, config.bins)
            _, logits = state.actor.apply_fn(state.actor.params, observations, coarse, centres)
            advantages = soft_advantages(logits[:, level, d], config.temperature)
            if deterministic:
                choice = jnp.argmax(advantages, axis=-1)
            else:
                key, sample_key = jax.random.split(key)
                choice = jax.random.categorical(sample_key, advantages / config.temperature)
            indices = indices.at[:, level, d].set(choice.astype(jnp.int32))
    return indices


def act(state: State, observations, key, deterministic: bool, config: Config):
    key = jax.random.PRNGKey(0) if key is None else key
    indices = select_bins(state, observations, key, deterministic, config)
    return decode(indices, config.bins)[0]


def explore(state: State, observations, key, step, config: Config):
    sample_key, noise_key = jax.random.split(key)
    actions = act(state, observations, sample_key, False, config)
    noise = config.exploration_noise * jax.random.normal(noise_key, actions.shape)
    return jnp.clip(actions + noise, -1.0, 1.0)
