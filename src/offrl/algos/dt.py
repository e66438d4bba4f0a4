"""Decision Transformer, with MO-DT's heads and Decision Mamba's self-evolving target.

A return-conditioned sequence policy: windows of ``K`` steps become tokens
``(R_t, s_t, a_t)`` (each a linear embedding plus a learned timestep
embedding), a causal transformer reads them, and the action ``a_t`` is
predicted from the ``s_t`` token (so from ``R_0, s_0, a_0, ..., R_t, s_t``):

    L = E_window mean_{t real} ||tanh(f(s_t token)) - a_t||^2

(masked to the window's real steps; returns-to-go are undiscounted and scaled by
``return_scale``). At evaluation the first return-to-go is ``target_return``
and each reward received is subtracted from it (:mod:`offrl.core.history`).

Options, off by default (``mo_dt`` and ``dmamba`` are these settings):

- **MO-DT heads** (``state_loss_weight``, ``return_loss_weight``): the ``a_t`` token
  also predicts the next observation ``s'_t`` and the next return-to-go
  ``R_t - r_t``; ``L += w_s ||s'_pred - s'||^2 + w_R (R'_pred - R')^2``.
- **MO-DT action-region tokens** (``action_regions = M``): each action dimension's
  range ``[-1, 1]`` is cut into ``M`` equal regions; a fourth token per step,
  ``c_t`` (the one-hot regions of ``a_t``, embedded), sits between ``s_t`` and
  ``a_t``. The ``s_t`` token classifies the regions (``L += w_c CE``) and the action
  is read from the ``c_t`` token. At evaluation the step's regions are the
  classifier's argmax (a second pass of the network with them filled in).
- **Decision Mamba** (``backbone = "ssm"``): the transformer blocks become
  selective state-space blocks (:class:`offrl.nn.sequence.SSMBlock`, Mamba's S6 as an
  associative scan in JAX) over the tokens (fine grain), plus a step-level SSM over
  each step's mean token whose output, shifted one step so that no step sees its own
  action, is added to the next step's tokens (coarse grain);
- **self-evolving action target** (``evolve_weight = beta``): the regression target is
  ``(1 - b_k) a_t + b_k a_prev(t)``, with ``a_prev`` the prediction of a snapshot of
  the network taken every ``evolve_every`` updates and ``b_k`` growing linearly from
  0 to ``beta`` over the run (Decision Mamba's progressive self-evolution, which
  refines noisy data actions toward the policy's own consistent ones).

The network also takes, for Meta-DT (:mod:`offrl.algos.meta_dt`), a per-step task
embedding added to each state token and prompt steps ``(R, s, a)`` placed before the
window with embeddings of their own; without them it is DT's, parameters included.

Defaults are CORL's ``dt.py`` (embedding 128, 3 layers, 1 head, ``K = 20``, dropout
0.1, AdamW lr 1e-4 with weight decay 1e-4 and a 10k-update linear warm-up,
gradient clipping 0.25, return scale 0.001, 1000 timestep embeddings). Deviations:
CORL's per-dataset configs use batch 4096 and lr 8e-4 (the trainer's batch size
is the run's ``--batch-size``); the target return defaults to the best episode
return in the training data (CORL sets it per task: 3600 for Hopper); padding is
handled by causality alone (CORL also masks padded keys, which changes no real
position's output); MO-DT's region-token layout and Decision Mamba's coarse/fine
split are our reading of their abstracts (their code was not read).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import at_last_step, window_mean
from offrl.core.state import adamw, create_train_state
from offrl.data.windows import with_returns_to_go
from offrl.nn.sequence import SSMBlock, TransformerBlock, small_normal

DEFAULT_REWARD_SCALING = "none"
#: Actions (the targets) and rewards (the returns-to-go).
REQUIRED_FIELDS = ("actions", "rewards")


@dataclasses.dataclass(frozen=True)
class Config:
    """Decision Transformer settings (CORL's ``dt.py`` defaults)."""

    context_length: int = 20
    """Steps per window, ``K``."""
    embedding_dim: int = 128
    """Token width."""
    num_layers: int = 3
    """Transformer (or SSM) blocks."""
    num_heads: int = 1
    """Attention heads."""
    dropout: float = 0.1
    """Dropout of the embeddings, the attention weights and the residual branches."""
    max_timestep: int = 1000
    """Timestep embeddings; later steps share the last one."""
    learning_rate: float = 1e-4
    """AdamW learning rate (after the warm-up)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 10_000
    """Linear learning-rate warm-up."""
    grad_clip: float = 0.25
    """Global gradient-norm clip."""
    return_scale: float = 0.001
    """Returns-to-go are multiplied by this before they are embedded."""
    target_return: float | None = None
    """The first return-to-go at evaluation (environment units); ``None``: the best
    episode return in the training data."""
    backbone: Literal["transformer", "ssm"] = "transformer"
    """Causal transformer (DT) or selective state-space blocks (Decision Mamba)."""
    ssm_state_dim: int = 16
    """State size per channel of the SSM backbone."""
    state_loss_weight: float = 0.0
    """MO-DT: weight of the next-observation prediction loss."""
    return_loss_weight: float = 0.0
    """MO-DT: weight of the next return-to-go prediction loss."""
    action_regions: int = 0
    """MO-DT: regions per action dimension for the region tokens (0: none)."""
    region_loss_weight: float = 1.0
    """MO-DT: weight of the region classification loss (with ``action_regions``)."""
    evolve_weight: float = 0.0
    """Decision Mamba: the final share of the previous iterate's action in the target."""
    evolve_every: int = 1000
    """Updates between snapshots of the previous iterate."""
    decay_steps: int | None = None
    """Updates over which the evolve share grows to ``evolve_weight`` (None: the run)."""


def window_length(config: Config) -> int:
    return config.context_length


history_length = window_length  # acts on the episode's last K steps


def prepare_dataset(dataset, config: Config):
    """Undiscounted returns-to-go (in the run's reward units) for the windows."""
    return with_returns_to_go(dataset)


@struct.dataclass
class State:
    actor: TrainState
    previous: dict  # the previous iterate's parameters (self-evolving target)
    key: jax.Array
    step: jax.Array


def action_regions(actions: jax.Array, regions: int) -> jax.Array:
    """The region index of every action coordinate: ``[-1, 1]`` cut into ``regions``
    equal intervals (int32, same shape as ``actions``)."""
    index = jnp.floor((jnp.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * regions)
    return jnp.clip(index, 0, regions - 1).astype(jnp.int32)


class DecisionTransformerNet(nn.Module):
    """``(observations, actions, returns_to_go, timesteps, regions) -> predictions``
    over ``[B, K]`` windows; see the module docstring for the token layout."""

    observation_dim: int
    action_dim: int
    config: Config

    @nn.compact
    def __call__(self, observations, actions, returns_to_go, timesteps, regions=None,
                 deterministic: bool = True, contexts=None, prompt=None):  # fmt: skip
        c = self.config
        batch, length = observations.shape[:2]
        width = c.embedding_dim
        dense = lambda n: nn.Dense(n, kernel_init=small_normal)  # noqa: E731
        time = nn.Embed(c.max_timestep, width, embedding_init=small_normal)(
            jnp.clip(timesteps, 0, c.max_timestep - 1)
        )
        tokens = [
            dense(width)(returns_to_go[..., None] * c.return_scale) + time,
            dense(width)(observations) + time,
        ]
        if contexts is not None:  # Meta-DT: a task embedding per step joins the state token
            context = nn.Dense(width, kernel_init=small_normal, name="context_embedding")
            tokens[1] = tokens[1] + context(contexts)
        if c.action_regions:
            one_hot = jax.nn.one_hot(regions, c.action_regions).reshape(batch, length, -1)
            tokens.append(dense(width)(one_hot) + time)
        tokens.append(dense(width)(actions) + time)
        per_step = len(tokens)
        x = jnp.stack(tokens, axis=2)  # [B, K, n, D]
        if c.backbone == "ssm":  # coarse grain: steps < t summarized for step t
            steps = jnp.mean(x, axis=2)
            for _ in range(max(1, c.num_layers // 2)):
                steps = SSMBlock(c.ssm_state_dim, c.dropout)(steps, deterministic)
            shifted = jnp.pad(steps, ((0, 0), (1, 0), (0, 0)))[:, :-1]
            x = x + dense(width)(shifted)[:, :, None]
        x = x.reshape(batch, length * per_step, width)
        prefix = 0
        if prompt is not None:  # Meta-DT: prompt steps (R, s, a), own embeddings, go first
            prompt_tokens = _prompt_tokens(prompt, width, c)
            prefix = prompt_tokens.shape[1]
            x = jnp.concatenate([prompt_tokens, x], axis=1)
        x = nn.Dropout(c.dropout)(nn.LayerNorm()(x), deterministic=deterministic)
        for _ in range(c.num_layers):
            if c.backbone == "ssm":
                x = SSMBlock(c.ssm_state_dim, c.dropout)(x, deterministic)
            else:
                x = TransformerBlock(c.num_heads, c.dropout, c.dropout)(x, deterministic)
        x = nn.LayerNorm()(x)[:, prefix:].reshape(batch, length, per_step, width)
        state_token, action_token = x[:, :, 1], x[:, :, -1]
        reader = x[:, :, 2] if c.action_regions else state_token
        out = {"actions": jnp.tanh(dense(self.action_dim)(reader))}
        if c.action_regions:
            logits = dense(self.action_dim * c.action_regions)(state_token)
            out["region_logits"] = logits.reshape(batch, length, self.action_dim, -1)
        if c.state_loss_weight:
            out["next_observations"] = dense(self.observation_dim)(action_token)
        if c.return_loss_weight:
            out["next_returns"] = dense(1)(action_token)[..., 0]
        return out


def _prompt_tokens(prompt, width: int, c: Config):
    """``[B, 3P, D]`` tokens ``(R, s, a)`` per prompt step, embedded by layers of their
    own (Meta-DT's ``prompt_embed_*``) plus a timestep embedding of their own."""
    dense = lambda name: nn.Dense(width, kernel_init=small_normal, name=name)  # noqa: E731
    embed = nn.Embed(c.max_timestep, width, embedding_init=small_normal, name="prompt_time")
    time = embed(jnp.clip(prompt["timesteps"], 0, c.max_timestep - 1))
    returns = prompt["returns_to_go"][..., None] * c.return_scale
    tokens = jnp.stack(
        [
            dense("prompt_returns")(returns) + time,
            dense("prompt_observations")(prompt["observations"]) + time,
            dense("prompt_actions")(prompt["actions"]) + time,
        ],
        axis=2,
    )  # [B, P, 3, D]
    return tokens.reshape(tokens.shape[0], -1, width)


def _network(config: Config, observation_dim: int, action_dim: int):
    return DecisionTransformerNet(observation_dim, action_dim, config)


def _inputs(window, config: Config):
    regions = action_regions(window["actions"], config.action_regions) if config.action_regions else None  # fmt: skip  # noqa: E501
    return (window["observations"], window["actions"], window["returns_to_go"],
            window["timesteps"], regions)  # fmt: skip


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, init_key = jax.random.split(key)
    obs = example_batch["observations"][:, None]
    act = example_batch["actions"][:, None]
    window = {
        "observations": obs,
        "actions": act,
        "returns_to_go": jnp.zeros(obs.shape[:2]),
        "timesteps": jnp.zeros(obs.shape[:2], jnp.int32),
    }
    net = _network(config, obs.shape[-1], act.shape[-1])
    params = net.init(init_key, *_inputs(window, config))
    tx = adamw(config.learning_rate, config.weight_decay, config.warmup_steps, config.grad_clip)
    return State(
        actor=create_train_state(net, params, config.learning_rate, tx=tx),
        previous=params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def evolve_share(step, config: Config):
    """``b_k``: the previous iterate's share of the action target at update ``step``."""
    if not config.evolve_weight:
        return jnp.float32(0.0)
    horizon = max(int(config.decay_steps or 1), 1)
    return config.evolve_weight * jnp.minimum(step / horizon, 1.0)


def sequence_loss(predictions, batch, targets, config: Config):
    """``(loss, metrics)`` of the predictions on a window batch, given the action
    ``targets`` (see the module docstring for every term)."""
    mask = batch["mask"]
    action = window_mean((predictions["actions"] - targets) ** 2, mask)
    loss, metrics = action, {"actor/action_mse": action}
    if "next_observations" in predictions:
        state = window_mean(
            (predictions["next_observations"] - batch["next_observations"]) ** 2, mask
        )  # noqa: E501
        loss = loss + config.state_loss_weight * state
        metrics["actor/state_mse"] = state
    if "next_returns" in predictions:
        next_returns = (batch["returns_to_go"] - batch["rewards"]) * config.return_scale
        ret = window_mean((predictions["next_returns"] - next_returns) ** 2, mask)
        loss = loss + config.return_loss_weight * ret
        metrics["actor/return_mse"] = ret
    if "region_logits" in predictions:
        labels = action_regions(batch["actions"], config.action_regions)
        log_p = jax.nn.log_softmax(predictions["region_logits"], axis=-1)
        nll = -jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
        region = window_mean(nll, mask)
        loss = loss + config.region_loss_weight * region
        metrics["actor/region_nll"] = region
    metrics["actor/loss"] = loss
    return loss, metrics


def update(state: State, batch, config: Config):
    key, dropout_key = jax.random.split(state.key)
    inputs = _inputs(batch, config)
    targets = batch["actions"]
    share = evolve_share(state.step, config)
    if config.evolve_weight:
        previous = state.actor.apply_fn(state.previous, *inputs)["actions"]
        targets = (1.0 - share) * targets + share * jax.lax.stop_gradient(previous)

    def loss_fn(params):
        predictions = state.actor.apply_fn(
            params, *inputs, deterministic=False, rngs={"dropout": dropout_key}
        )
        return sequence_loss(predictions, batch, targets, config)

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.actor.params)
    actor = state.actor.apply_gradients(grads=grads)
    metrics["actor/grad_norm"] = optax.tree.norm(grads)
    if config.evolve_weight:
        metrics["actor/evolve_share"] = share
    step = state.step + 1
    previous = state.previous
    if config.evolve_weight:
        snapshot = step % config.evolve_every == 0
        previous = jax.tree_util.tree_map(
            lambda new, old: jnp.where(snapshot, new, old), actor.params, previous
        )
    return state.replace(actor=actor, previous=previous, key=key, step=step), metrics


def act(state: State, window, key, deterministic: bool, config: Config):
    """The action for the last real step of every window (``window`` as in
    :func:`offrl.core.trainer.build_policy`, in the networks' units)."""
    last = jnp.maximum(jnp.sum(window["mask"], axis=-1).astype(jnp.int32) - 1, 0)  # [N]
    rows = jnp.arange(last.shape[0])
    observations, actions, returns, timesteps, regions = _inputs(window, config)
    apply = state.actor.apply_fn
    params = state.actor.params
    out = apply(params, observations, actions, returns, timesteps, regions)
    if config.action_regions:  # fill in this step's regions, then read the action
        chosen = jnp.argmax(out["region_logits"][rows, last], axis=-1)  # [N, A]
        # written at the last step as a select, not a scatter (ONNX export has no
        # scatter for this pattern)
        at_last = jnp.arange(regions.shape[1])[None] == last[:, None]  # [N, K]
        regions = jnp.where(at_last[..., None], chosen[:, None, :], regions)
        out = apply(params, observations, actions, returns, timesteps, regions)
    return at_last_step(out["actions"], window["mask"])
