"""ResFiT: residual off-policy fine-tuning of a frozen behavior-cloned policy (Ankile et al., 2025).

The base policy ``b(s)`` (a BC run, frozen) keeps acting; a small residual
actor learns a per-step correction with TD3 on an RLPD-style buffer (half
offline data, half online)::

    a = clip(b(s) + r(s, b(s)), -1, 1),    r = scale * tanh(f(s, b(s)))

The last layer of ``f`` starts at zero, so at the start ``a = b(s)`` exactly:
fine-tuning begins from the BC policy's own behaviour. Critic (an ensemble of
``E`` LayerNorm critics, the target over a random pair)::

    a' = clip(b(s') + r_targ(s', b(s')) + clip(N(0, sigma^2), -c, c), -1, 1)
    y  = r + gamma * (1 - terminated) * min_{i in I} Q_targ_i(s', a'),  |I| = 2
    L_Q = sum_i E (Q_i(s, a) - y)^2

Actor, after ``critic_warmup`` critic-only updates and once per environment
step (``actor_every``): ``L_r = -E mean_i Q_i(s, clip(b(s) + r(s, b(s)), -1, 1))``.
The base action is recomputed from the state for every row, so offline rows
are labelled with the base policy's action, as in the released code. Before
``warmup_steps`` the collection policy is the base plus uniform noise of
``warmup_noise``; after it, base plus residual plus Gaussian noise ``sigma``.

Defaults are the released code's (amazon-science/residual-offpolicy-rl,
``residual_td3.py`` and ``rlpd.py``, read): residual scale 0.1, last layer
initialised at 0, actor learning rate 1e-6, critic 1e-4, Polyak 0.005, 10
critics with a random pair for the target and the ensemble mean for the
actor, LayerNorm in actor and critic, gradient clipping at norm 1, noise
sigma 0.05 clipped at 0.3 for target smoothing, 10k critic-only warm-up
updates, 10k warm-up steps of base plus U(-0.2, 0.2) noise, 4 critic updates
and 1 actor update per environment step, 50/50 offline/online batches.
Deviations: state observations and 256x256 MLPs instead of image encoders and
1024-wide heads; 1-step instead of 3-step returns; Adam instead of AdamW; the
critic loss is the mean of the heads' squared errors (the released code
squares the heads' mean absolute error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import bc
from offrl.algos.common import ensemble_mse, td_target
from offrl.algos.rlpd import subset_min
from offrl.core.registry import OnlineSpec
from offrl.core.state import create_train_state, polyak, update_if
from offrl.nn import QEnsemble
from offrl.nn.mlp import MLP

DEFAULT_REWARD_SCALING = "none"
#: What ``act`` reads: the residual actor and the frozen base (policy files).
POLICY_FIELDS = ("actor", "base")
ONLINE = OnlineSpec(mixing="ratio", utd=4, learning_starts=10_000)
#: The runs a ResFiT fine-tuning can start from (the frozen base).
BASE_ALGORITHMS = ("bc",)


@dataclasses.dataclass(frozen=True)
class Config:
    """ResFiT settings (the released code's)."""

    actor_learning_rate: float = 1e-6
    """Adam learning rate of the residual actor."""
    critic_learning_rate: float = 1e-4
    """Adam learning rate of the critics."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the residual actor and the critics."""
    base_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the base BC policy (set from the BC run when starting from one)."""
    base_policy: str = "deterministic"
    """The base BC policy's kind (set from the BC run when starting from one)."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target actor and critics."""
    residual_scale: float = 0.1
    """Largest residual per action dimension (the actor's tanh output is scaled by it)."""
    num_critics: int = 10
    """E: critics in the ensemble."""
    num_min_critics: int = 2
    """Target critics (a random subset) the minimum is taken over."""
    layer_norm: bool = True
    """LayerNorm in the residual actor and the critics."""
    grad_clip: float = 1.0
    """Global gradient-norm clip of actor and critics."""
    noise_std: float = 0.05
    """Exploration and target-smoothing noise sigma."""
    noise_clip: float = 0.3
    """Clip of the target-smoothing noise."""
    critic_warmup: int = 10_000
    """Critic-only updates before the actor learns."""
    warmup_steps: int = 10_000
    """Environment steps with base + uniform noise before the residual acts."""
    warmup_noise: float = 0.2
    """Half-width of the uniform noise during the warm-up steps."""
    actor_every: int = 1
    """Actor update every this many critic updates (set to the loop's UTD)."""


class ResidualActor(nn.Module):
    """``scale * tanh(f([s, b(s)]))`` with ``f``'s last layer initialised at zero."""

    action_dim: int
    hidden_dims: Sequence[int]
    scale: float
    layer_norm: bool = True

    @nn.compact
    def __call__(self, observations, base_actions):
        x = jnp.concatenate([observations, base_actions], axis=-1)
        x = MLP(self.hidden_dims, layer_norm=self.layer_norm)(x)
        x = nn.Dense(self.action_dim, kernel_init=nn.initializers.zeros)(x)
        return self.scale * jnp.tanh(x)


@struct.dataclass
class State:
    base: bc.State
    actor: TrainState
    critic: TrainState
    target_actor_params: dict
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def _base_config(config: Config) -> bc.Config:
    return bc.Config(hidden_dims=config.base_hidden_dims, policy=config.base_policy)


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, base_key = jax.random.split(key)
    base = bc.init(_base_config(config), example_batch, base_key)
    return _init_with_base(config, example_batch, key, base)


def config_for_base(config: Config, base_config: bc.Config) -> Config:
    """``config`` describing the BC run's policy, so a saved ResFiT run restores alone."""
    return dataclasses.replace(
        config, base_hidden_dims=tuple(base_config.hidden_dims), base_policy=base_config.policy
    )


def init_from(config: Config, example_batch, key, base_state, base_config) -> State:
    """A fresh residual and critics on top of a BC run's (frozen) policy."""
    return _init_with_base(config, example_batch, key, base_state)


def _init_with_base(config: Config, example_batch, key, base) -> State:
    if not 1 <= config.num_min_critics <= config.num_critics:
        raise ValueError("num_min_critics must be between 1 and num_critics")
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = ResidualActor(
        actions.shape[-1], config.hidden_dims, config.residual_scale, config.layer_norm
    )
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.layer_norm)
    actor_params = actor_module.init(actor_key, observations, actions)
    critic_params = critic_module.init(critic_key, observations, actions)
    return State(
        base=base,
        actor=create_train_state(
            actor_module, actor_params, config.actor_learning_rate, grad_clip=config.grad_clip
        ),
        critic=create_train_state(
            critic_module, critic_params, config.critic_learning_rate, grad_clip=config.grad_clip
        ),
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def online_config(config: Config, finetune_config=None) -> Config:
    if finetune_config is None:
        return config
    return dataclasses.replace(config, actor_every=int(finetune_config.utd))


def base_actions(state: State, observations, config: Config):
    """The frozen base policy's deterministic action."""
    return jax.lax.stop_gradient(bc.act(state.base, observations, None, True, _base_config(config)))


def combined(state: State, actor_params, observations, config: Config):
    """``(a, residual)``: ``a = clip(b(s) + r(s, b(s)), -1, 1)``."""
    base = base_actions(state, observations, config)
    residual = state.actor.apply_fn(actor_params, observations, base)
    return jnp.clip(base + residual, -1.0, 1.0), residual


def critic_loss(critic_params, state: State, batch, config: Config, key):
    noise_key, subset_key = jax.random.split(key)
    next_obs = batch["next_observations"]
    base = base_actions(state, next_obs, config)
    residual = state.actor.apply_fn(state.target_actor_params, next_obs, base)
    noise = jnp.clip(
        config.noise_std * jax.random.normal(noise_key, residual.shape),
        -config.noise_clip,
        config.noise_clip,
    )
    next_actions = jnp.clip(base + residual + noise, -1.0, 1.0)
    next_q = subset_min(
        state.critic.apply_fn(state.target_critic_params, next_obs, next_actions),
        subset_key,
        config.num_min_critics,
    )
    target = td_target(batch, config.discount, next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/target_mean": target.mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config):
    actions, residual = combined(state, actor_params, batch["observations"], config)
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions).mean(axis=0)
    loss = -q.mean()
    return loss, {"actor/loss": loss, "actor/residual_norm": jnp.abs(residual).mean()}


def _actor_step(state: State, batch, config: Config):
    grads, metrics = jax.grad(actor_loss, has_aux=True)(state.actor.params, state, batch, config)
    actor = state.actor.apply_gradients(grads=grads)
    return state.replace(
        actor=actor,
        target_actor_params=polyak(state.target_actor_params, actor.params, config.tau),
    ), metrics


def update(state: State, batch, config: Config):
    key, critic_key = jax.random.split(state.key)
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
    )

    do_actor = (state.step >= config.critic_warmup) & ((state.step + 1) % config.actor_every == 0)
    state, actor_metrics = update_if(do_actor, lambda s: _actor_step(s, batch, config), state)
    metrics = {**critic_metrics, **actor_metrics, "_valid/actor": do_actor.astype(jnp.float32)}
    return state.replace(step=state.step + 1), metrics


def act(state: State, observations, key, deterministic: bool, config: Config):
    actions, _ = combined(state, state.actor.params, observations, config)
    if deterministic:
        return actions
    return jnp.clip(actions + config.noise_std * jax.random.normal(key, actions.shape), -1.0, 1.0)


def explore(state: State, observations, key, step, config: Config):
    """Base + U(-w, w) during the warm-up steps, then base + residual + N(0, sigma^2)."""
    uniform_key, normal_key = jax.random.split(key)
    base = base_actions(state, observations, config)
    warm = base + jax.random.uniform(
        uniform_key, base.shape, minval=-config.warmup_noise, maxval=config.warmup_noise
    )
    actions, _ = combined(state, state.actor.params, observations, config)
    learned = actions + config.noise_std * jax.random.normal(normal_key, base.shape)
    return jnp.clip(jnp.where(step < config.warmup_steps, warm, learned), -1.0, 1.0)
