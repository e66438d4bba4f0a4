"""EDAC (An et al. 2021, "Uncertainty-Based Offline RL with Diversified Q-Ensemble"),
as CORL's ``edac.py`` runs it; with ``eta = 0`` it is SAC-N (``offrl.algos.sac_n``).

SAC with N critics (one vmapped ensemble): the critic target and the actor take the
minimum over all N, which penalizes actions the ensemble disagrees on. EDAC adds a
gradient-diversity term to the critic loss: with ``g_i = grad_a Q_i(s, a) /
||grad_a Q_i(s, a)||`` at the data's actions::

    L_Q = sum_i E_D (Q_i(s, a) - y)^2 + eta / (N - 1) E_D sum_{i != j} <g_i, g_j>
    y   = r + gamma (1 - terminated) (min_i Q_targ_i(s', a') - alpha log pi(a'|s'))

The update order is CORL's (it found the EDAC paper's reverse order better):
temperature, actor (with the new temperature), critics, then Polyak averaging.

Defaults are CORL's: N = 10, eta = 1, 3x256 networks, Adam 3e-4 for actor, critics
and temperature, gamma 0.99, tau 0.005, initial alpha 1, target entropy -|A|, batch
256; the per-dataset N and eta of its configs are in :data:`PRESETS` (Hopper: N = 50;
SAC-N: up to 500) and ``Config.preset(name)``. Deviations: the policy's log-std is
clipped to [-20, 2] (SAC's; CORL's EDAC actor clips to [-5, 2]); flax's default
initializers instead of CORL's (EDAC's) uniform ones.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from offrl.algos import sac
from offrl.algos.common import temperature_loss
from offrl.core.state import polyak
from offrl.nn import QNetwork, sample_tanh_gaussian

DEFAULT_REWARD_SCALING = "none"
State = sac.State
init = sac.init
act = sac.act

#: CORL's per-dataset (num_critics, eta), by the suite's dataset names.
PRESETS = {
    "halfcheetah-medium": (10, 1.0),
    "halfcheetah-medium-replay": (10, 1.0),
    "halfcheetah-medium-expert": (10, 5.0),
    "hopper-medium": (50, 1.0),
    "hopper-medium-replay": (50, 1.0),
    "hopper-medium-expert": (50, 1.0),
    "walker2d-medium": (10, 1.0),
    "walker2d-medium-replay": (10, 1.0),
    "walker2d-medium-expert": (10, 5.0),
}


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """EDAC settings (CORL's defaults; SAC's fields with these values)."""

    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of actor and critic MLPs."""
    num_critics: int = 10
    """N: size of the critic ensemble (PRESETS: per dataset)."""
    eta: float = 1.0
    """Weight of the gradient-diversity term (0: SAC-N)."""

    @classmethod
    def preset(cls, dataset: str, **overrides) -> Config:
        """CORL's N and eta for a suite dataset (``hopper-medium``, ``suite:...``)."""
        name = dataset.removeprefix("suite:")
        if name not in PRESETS:
            raise KeyError(f"no EDAC preset for '{dataset}'; presets: {', '.join(PRESETS)}")
        critics, eta = PRESETS[name]
        return cls(num_critics=critics, eta=eta, **overrides)


def diversity_loss(critic_params, observations, actions, config) -> jax.Array:
    """EDAC's term: the mean over the batch of the summed pairwise cosine similarity
    of the members' action gradients, divided by N - 1."""
    members = critic_params["params"]["VmapQNetwork_0"]
    network = QNetwork(config.hidden_dims, config.critic_layer_norm)

    def unit_gradient(params):
        grad = jax.grad(lambda a: network.apply({"params": params}, observations, a).sum())(
            actions
        )  # [B, A]
        squared = jnp.sum(grad * grad, axis=-1, keepdims=True)
        # The norm with a zero gradient at a zero vector (a member whose ReLUs are all
        # off there): jnp.linalg.norm's gradient at 0 is NaN.
        norm = jnp.where(squared > 0, jnp.sqrt(jnp.where(squared > 0, squared, 1.0)), 0.0)
        return grad / (norm + 1e-10)

    grads = jax.vmap(unit_gradient)(members)  # [N, B, A]
    count = grads.shape[0]
    similarity = jnp.einsum("ibk,jbk->bij", grads, grads) * (1.0 - jnp.eye(count))
    return similarity.sum(axis=(1, 2)).mean() / max(count - 1, 1)


def critic_loss(critic_params, state, batch, config: Config, key):
    loss, metrics = sac.critic_loss(critic_params, state, batch, config, key)
    if config.eta == 0.0:
        return loss, metrics
    diversity = diversity_loss(critic_params, batch["observations"], batch["actions"], config)
    total = loss + config.eta * diversity
    return total, {**metrics, "critic/loss": total, "critic/diversity": diversity}


def update(state, batch, config: Config):
    key, alpha_key, actor_key, critic_key = jax.random.split(state.key, 4)
    # Temperature first, on the current policy's log-probabilities.
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["observations"])
    _, log_prob = sample_tanh_gaussian(mean, log_std, alpha_key)
    entropy_target = sac.target_entropy(config, batch["actions"].shape[-1])
    alpha_loss, alpha_grads = jax.value_and_grad(
        lambda p: temperature_loss(p["log_alpha"], log_prob, entropy_target)
    )(state.log_alpha.params)
    state = state.replace(log_alpha=state.log_alpha.apply_gradients(grads=alpha_grads))
    # Then the actor, with the new temperature.
    grads, (actor_metrics, _) = jax.grad(sac.actor_loss, has_aux=True)(
        state.actor.params, state, batch, config, actor_key
    )
    state = state.replace(actor=state.actor.apply_gradients(grads=grads))
    # Then the critics.
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
        step=state.step + 1,
    )
    metrics = {
        **critic_metrics,
        **actor_metrics,
        "alpha/loss": alpha_loss,
        "alpha/value": jnp.exp(state.log_alpha.params["log_alpha"]),
    }
    return state, metrics
