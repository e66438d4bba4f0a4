"""Math that several algorithms share, written once (each algorithm file keeps what
is its own)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from offrl.core.state import polyak, update_if


def sample_mean(values, batch):
    """The batch mean of per-sample values ``[B]``; where the dataset carries per-sample
    weights (``batch["weights"]``), the self-normalized weighted mean
    ``sum_i w_i v_i / sum_i w_i`` (a batch whose weights are all 0 gives 0)."""
    weights = batch.get("weights")
    if weights is None:
        return jnp.mean(values)
    return jnp.sum(weights * values) / jnp.maximum(jnp.sum(weights), 1e-8)


def td_target(batch, discount: float, next_value):
    """``r + gamma * (1 - terminated) * V(s')``: a truncation is bootstrapped, a
    termination is not."""
    return batch["rewards"] + discount * (1.0 - batch["terminations"]) * next_value


def ensemble_mse(q, target):
    """Regression of an ensemble ``q [E, B]`` onto ``target [B]`` (no gradient
    through it): the mean squared error of each member, summed over members."""
    return ((q - jax.lax.stop_gradient(target)) ** 2).mean(axis=1).sum()


def temperature_loss(log_alpha, log_prob, target_entropy: float):
    """SAC's temperature loss ``-log_alpha * E[log pi + H*]`` (no gradient through
    ``log_prob``)."""
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_prob) + target_entropy)


def actor_and_temperature_step(
    state, actor_loss, loss_args: tuple, target_entropy: float, alpha_param: str = "value"
):
    """SAC's actor-and-temperature step, shared by SAC, CQL (and Cal-QL), RLPD and H2O.

    ``actor_loss(actor_params, *loss_args) -> (loss, (metrics, log_prob))``; the
    actor takes one gradient step on it and the temperature (``state.log_alpha``,
    its value at ``params[alpha_param]``) one step of :func:`temperature_loss` with the
    same batch's log-probabilities. Returns ``(actor, log_alpha, metrics, alpha_loss)``.
    """
    grads, (metrics, log_prob) = jax.grad(actor_loss, has_aux=True)(state.actor.params, *loss_args)
    alpha_loss, alpha_grads = jax.value_and_grad(
        lambda p: temperature_loss(p[alpha_param], log_prob, target_entropy)
    )(state.log_alpha.params)
    actor = state.actor.apply_gradients(grads=grads)
    return actor, state.log_alpha.apply_gradients(grads=alpha_grads), metrics, alpha_loss


def expectile_loss(diff, expectile: float):
    """``|tau - 1(diff < 0)| * diff^2``, elementwise (IQL's value loss, V-OCBF's)."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff**2


def delayed_actor_update(state, batch, config, critic_loss, actor_loss):
    """TD3's update (TD3+BC, ReBRAC): a critic step on ``critic_loss(params, state,
    batch, config, noise_key)`` every call; every ``config.policy_frequency`` calls an
    actor step on ``actor_loss(params, state, batch, config)`` and Polyak averaging of
    both targets with ``config.tau``. ``state`` has ``actor``, ``critic``,
    ``target_actor_params``, ``target_critic_params``, ``key`` and ``step``."""
    key, noise_key = jax.random.split(state.key)
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, noise_key
    )
    state = state.replace(critic=state.critic.apply_gradients(grads=grads), key=key)

    def actor_and_targets(state):
        grads, metrics = jax.grad(actor_loss, has_aux=True)(
            state.actor.params, state, batch, config
        )
        actor = state.actor.apply_gradients(grads=grads)
        tau = config.tau
        return state.replace(
            actor=actor,
            target_actor_params=polyak(state.target_actor_params, actor.params, tau),
            target_critic_params=polyak(state.target_critic_params, state.critic.params, tau),
        ), metrics

    do_actor = state.step % config.policy_frequency == 0
    state, actor_metrics = update_if(do_actor, actor_and_targets, state)
    # The trainer averages actor/* metrics over the updates where they were measured.
    metrics = {**critic_metrics, **actor_metrics, "_valid/actor": do_actor.astype(jnp.float32)}
    return state.replace(step=state.step + 1), metrics


def smoothed_target_actions(state, next_observations, config, key):
    """TD3's target policy smoothing: ``clip(pi_targ(s') + clip(eps, -c, c), -1, 1)``,
    ``eps ~ N(0, policy_noise^2)``, ``c = noise_clip``."""
    next_actions = state.actor.apply_fn(state.target_actor_params, next_observations)
    noise = jnp.clip(
        config.policy_noise * jax.random.normal(key, next_actions.shape),
        -config.noise_clip,
        config.noise_clip,
    )
    return jnp.clip(next_actions + noise, -1.0, 1.0)


def at_last_step(values, mask):
    """``values [N, K, ...]`` at the last real step of each window (``mask [N, K]``):
    what a sequence policy acts on."""
    last = jnp.maximum(jnp.sum(mask, axis=-1).astype(jnp.int32) - 1, 0)
    return values[jnp.arange(last.shape[0]), last]


def window_mean(values, mask):
    """Mean of ``values [B, K, ...]`` over the real steps of a window batch (``mask
    [B, K]``), averaging any trailing axes first."""
    per_step = values.reshape(values.shape[:2] + (-1,)).mean(axis=-1)
    return jnp.sum(per_step * mask) / jnp.maximum(jnp.sum(mask), 1.0)
