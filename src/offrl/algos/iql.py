"""Implicit Q-Learning (Kostrikov, Nair & Levine, 2021).

Value (expectile regression against the target critic)::

    u = min_i Q_targ_i(s, a) - V(s)
    L_V = E_D |tau - 1(u < 0)| u^2

Actor (advantage-weighted regression with the new V)::

    w = min(exp(beta * (min_i Q_targ_i(s, a) - V(s))), 100)
    L_pi = -E_D w * log pi(a|s)

Critic::

    y = r + gamma * (1 - terminated) * V(s')
    L_Q = sum_i E_D (Q_i(s, a) - y)^2

then Polyak averaging of the critic targets with rate ``tau_polyak``. The
update order is the released code's: value, actor, critic, target.

Defaults are the paper's locomotion settings: expectile 0.7, beta 3.0, gamma
0.99, Polyak 0.005, Adam 3e-4 for all three networks with a cosine decay of
the actor's learning rate over the run, 256x256 MLPs, batch 256, a Gaussian
policy with tanh on the mean, state-independent log-std clipped to [-5, 2], no
dropout, and rewards scaled by ``1000 / (max return - min return)``
(``DEFAULT_REWARD_SCALING = "locomotion"``) on the MuJoCo locomotion tasks
only, as in the paper and CORL; other datasets keep their rewards (see
:func:`offrl.core.trainer.resolve_reward_scaling`). Deviations: observations are
standardized by the trainer (CORL does the same; the paper did not); the
log-std is initialised at 0 (the released code also starts at 0).

Online fine-tuning (``offrl finetune iql --from RUN``) keeps these losses,
draws batches uniformly from the offline data plus the online transitions,
explores by sampling the Gaussian policy and gives the actor a constant
learning rate with fresh Adam moments (the offline cosine schedule has reached
0; CORL's PyTorch schedule restarts periodically instead).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import value_pretraining
from offrl.algos.common import ensemble_mse, expectile_loss, sample_mean, td_target
from offrl.core.registry import OnlineSpec
from offrl.core.state import adam, create_train_state, polyak
from offrl.nn import GaussianPolicy, QEnsemble, VNetwork, gaussian_log_prob

DEFAULT_REWARD_SCALING = "locomotion"
#: Per-sample dataset weights reach the loss that regresses onto data actions.
USES_WEIGHTS = True
#: Online fine-tuning keeps the offline data in the replay buffer (CORL's IQL fine-tuning).
ONLINE = OnlineSpec(mixing="union")


@dataclasses.dataclass(frozen=True)
class Config:
    """IQL settings (the paper's locomotion values)."""

    actor_learning_rate: float = 3e-4
    """Initial Adam learning rate of the actor (cosine-decayed to 0)."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the Q critics."""
    value_learning_rate: float = 3e-4
    """Adam learning rate of the value network."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of all MLPs."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau_polyak: float = 0.005
    """Polyak rate of the target critics."""
    expectile: float = 0.7
    """Expectile tau of the value regression (0.9 for AntMaze in the paper)."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights (10 for AntMaze)."""
    max_weight: float = 100.0
    """Clip of the exponentiated advantage weights."""
    dropout_rate: float = 0.0
    """Actor dropout (0.1 for the paper's Kitchen and Adroit runs)."""
    decay_steps: int | None = None
    """Steps of the actor's cosine learning-rate decay; the trainer sets it to the run length."""
    num_critics: int = 2
    """Size of the Q ensemble."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden layer of the critics (as RLPD and ReBRAC): the remedy
    the training diagnostics suggest for a diverging or extrapolating critic."""
    value_init: str | None = None
    """A value pre-training file (offrl pretrain value: V-PTR's idea) to start from: the
    value network takes its weights, the actor's and critics' hidden layers its hidden
    layers (see value_init_encoders)."""
    value_init_encoders: bool = True
    """With value_init, also start the actor's and critics' hidden layers from it."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    value: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def gaussian_actor(action_dim: int, hidden_dims, dropout_rate: float = 0.0) -> GaussianPolicy:
    """IQL's policy: a Gaussian with an untransformed mean and a state-independent
    log-std clipped to [-5, 2] (also history and chunked IQL's)."""
    return GaussianPolicy(
        action_dim,
        hidden_dims,
        tanh_squash=False,
        state_dependent_std=False,
        log_std_min=-5.0,
        log_std_max=2.0,
        dropout_rate=dropout_rate,
    )


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key, value_key = jax.random.split(key, 4)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = gaussian_actor(actions.shape[-1], config.hidden_dims, config.dropout_rate)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm)
    value_module = VNetwork(config.hidden_dims)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    value_params = value_module.init(value_key, observations)
    return State(
        actor=create_train_state(
            actor_module, actor_params, config.actor_learning_rate, decay_steps=config.decay_steps
        ),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        value=create_train_state(value_module, value_params, config.value_learning_rate),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def load_pretrained(states: State, config: Config, pre) -> State:
    """The initial states (stacked over seeds) with the value pre-training of
    ``config.value_init`` in place; the run's observation standardization ``pre`` is
    folded into the first layers."""
    if not config.value_init:
        return states
    pretrained = value_pretraining.load(config.value_init)
    mean = np.asarray(pre.observation_mean, np.float32)
    std = np.asarray(pre.observation_std, np.float32)
    value_pretraining.check_shape(pretrained, config.hidden_dims, mean.shape[0], config.value_init)
    value = value_pretraining.value_params(pretrained, mean, std)
    seeds = states.step.shape[0]

    def tile(tree, *leading):
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (*leading, *x.shape)), tree)

    states = states.replace(value=states.value.replace(params=tile(value, seeds)))
    if not config.value_init_encoders:
        return states
    hidden = value_pretraining.hidden_layers(value)
    actor = states.actor.params
    actor = {"params": {**actor["params"], "MLP_0": tile(hidden, seeds)}}

    def critic_params(params):
        members = params["params"]["VmapQNetwork_0"]["MLP_0"]
        first = members["Dense_0"]
        kernel = (
            first["kernel"]
            .at[:, :, : mean.shape[0], :]
            .set(
                jnp.broadcast_to(
                    hidden["Dense_0"]["kernel"], first["kernel"][:, :, : mean.shape[0]].shape
                )
            )
        )
        layers = {**members, **tile(hidden, *first["bias"].shape[:2])}
        layers["Dense_0"] = {"kernel": kernel, "bias": layers["Dense_0"]["bias"]}
        return {"params": {"VmapQNetwork_0": {"MLP_0": layers}}}

    critic = critic_params(states.critic.params)
    return states.replace(
        actor=states.actor.replace(params=actor),
        critic=states.critic.replace(params=critic),
        target_critic_params=critic,
    )


def online_config(config: Config, finetune_config=None) -> Config:
    """Online, the actor's learning rate is constant."""
    return dataclasses.replace(config, decay_steps=None)


def start_online(state: State, config: Config) -> State:
    """Swap the actor's decayed schedule for a constant rate (fresh Adam moments)."""
    tx = adam(config.actor_learning_rate)
    return state.replace(actor=state.actor.replace(tx=tx, opt_state=tx.init(state.actor.params)))


def advantage_weights(q, v, temperature: float, max_weight: float):
    """``min(exp(beta * (q - v)), max_weight)``, elementwise."""
    return jnp.minimum(jnp.exp(temperature * (q - v)), max_weight)


def value_loss(value_params, state: State, batch, config: Config):
    q = state.critic.apply_fn(
        state.target_critic_params, batch["observations"], batch["actions"]
    ).min(axis=0)  # [B]
    v = state.value.apply_fn(value_params, batch["observations"])  # [B]
    loss = expectile_loss(jax.lax.stop_gradient(q) - v, config.expectile).mean()
    return loss, {"value/loss": loss, "value/v_mean": v.mean()}


def actor_loss(actor_params, state: State, batch, config: Config, dropout_key):
    q = state.critic.apply_fn(
        state.target_critic_params, batch["observations"], batch["actions"]
    ).min(axis=0)  # [B]
    v = state.value.apply_fn(state.value.params, batch["observations"])  # [B]
    weights = jax.lax.stop_gradient(advantage_weights(q, v, config.temperature, config.max_weight))
    mean, log_std = state.actor.apply_fn(
        actor_params, batch["observations"], deterministic=False, rngs={"dropout": dropout_key}
    )
    log_prob = gaussian_log_prob(mean, log_std, batch["actions"])  # [B]
    loss = -sample_mean(weights * log_prob, batch)
    return loss, {
        "actor/loss": loss,
        "actor/weight_mean": weights.mean(),
        "actor/bc_mse": jnp.mean((mean - batch["actions"]) ** 2),
        "actor/adv_mean": (q - v).mean(),
    }


def critic_loss(critic_params, state: State, batch, config: Config):
    next_v = state.value.apply_fn(state.value.params, batch["next_observations"])  # [B]
    target = td_target(batch, config.discount, next_v)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/td_error": jnp.abs(q - target).mean(),
    }


def update(state: State, batch, config: Config):
    key, dropout_key = jax.random.split(state.key)
    grads, value_metrics = jax.grad(value_loss, has_aux=True)(
        state.value.params, state, batch, config
    )
    state = state.replace(value=state.value.apply_gradients(grads=grads))
    grads, actor_metrics = jax.grad(actor_loss, has_aux=True)(
        state.actor.params, state, batch, config, dropout_key
    )
    state = state.replace(actor=state.actor.apply_gradients(grads=grads))
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config
    )
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau_polyak),
        key=key,
        step=state.step + 1,
    )
    return state, {**value_metrics, **actor_metrics, **critic_metrics}


def act(state: State, observations, key, deterministic: bool, config: Config):
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    if deterministic:
        return jnp.clip(mean, -1.0, 1.0)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
