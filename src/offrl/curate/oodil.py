"""OOD-IL: a transferability weight per demonstration, for demonstrations recorded under
other dynamics than the imitator's.

1. A forward model ``s' = s + f(s, a)`` of the imitator's own dynamics, fitted on a
   ``feasible`` dataset (transitions logged on the imitator's system, any behavior).
2. For every demonstration step, the transition the imitator would produce from the
   same state with the same action, ``(s, s + f(s, a))``, is paired with the
   demonstrated one, ``(s, s')``.
3. A discriminator ``D(s, s')`` learns to tell producible transitions (label 1) from
   demonstrated ones (label 0). Where the demonstration follows the imitator's
   dynamics the two are alike and ``D`` stays near 1/2; where it does not, ``D`` goes
   to 0. Both sides get Gaussian instance noise of the model's own held-out error, so
   that ``D`` cannot win on the model's small errors alone.
4. A step's transferability is the density ratio ``D / (1 - D)`` clipped to
   ``[0, 1]``; a demonstration's weight is the mean over its steps.

Deviation from the paper (Cao et al. 2023, no released code read): its discriminator
is trained against the imitator's rollouts in its environment and demonstrations are
first clustered by mode with a sequence-contrastive encoder; here the imitator's
transitions come from a model fitted offline on its own logs, from the demonstration
states, and no clustering is done (the weight is per demonstration).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import fit
from offrl.curate.quality import episode_means
from offrl.data.dataset import Dataset
from offrl.data.validate import DatasetError
from offrl.nn.mlp import MLP


@dataclasses.dataclass(frozen=True)
class Config:
    """OOD-IL's settings."""

    model_hidden_dims: tuple[int, ...] = (200, 200)
    """Widths of the forward model."""
    model_steps: int = 3000
    """Updates of the forward model."""
    discriminator_hidden_dims: tuple[int, ...] = (128, 128)
    """Widths of the discriminator."""
    discriminator_steps: int = 3000
    """Updates of the discriminator."""
    batch_size: int = 256
    """Rows per update."""
    learning_rate: float = 1e-3
    """Adam learning rate of both networks."""
    seed: int = 0
    """Seed of both networks and the noise."""


def step_transferability(
    demonstrations: Dataset, feasible: Dataset, config: Config | None = None
) -> tuple[np.ndarray, dict]:
    """Each demonstration step's transferability in ``[0, 1]`` and fit diagnostics."""
    config = config or Config()
    demos, own = demonstrations.to_numpy(), feasible.to_numpy()
    if (own.observation_dim, own.action_dim) != (demos.observation_dim, demos.action_dim):
        raise DatasetError(
            f"has {own.observation_dim}-d observations and {own.action_dim}-d actions, the "
            f"demonstrations {demos.observation_dim} and {demos.action_dim}",
            field="feasible",
            source=feasible.info.source,
            fix="give transitions of the imitator's own system on the same task",
        )
    mean = np.asarray(own.observations, np.float64).mean(0)
    std = np.maximum(np.asarray(own.observations, np.float64).std(0), 1e-6)
    a_mean = np.asarray(own.actions, np.float64).mean(0)
    a_std = np.maximum(np.asarray(own.actions, np.float64).std(0), 1e-6)

    def prepared(data):
        s = (np.asarray(data.observations) - mean) / std
        s_next = (np.asarray(data.next_observations) - mean) / std
        a = (np.asarray(data.actions) - a_mean) / a_std
        return (jnp.asarray(x, jnp.float32) for x in (s, a, s_next))

    s_own, a_own, next_own = prepared(own)
    s_demo, a_demo, next_demo = prepared(demos)
    key = jax.random.PRNGKey(config.seed)
    model_key, disc_key, noise_key, init_key = jax.random.split(key, 4)

    # 1. the imitator's forward model (10% of its own steps held out for its error)
    n_own = s_own.shape[0]
    order = np.random.default_rng(config.seed).permutation(n_own)
    held = order[: max(1, n_own // 10)]
    fit_rows = jnp.asarray(order[max(1, n_own // 10) :] if n_own > 1 else order)
    model = MLP(tuple(config.model_hidden_dims), s_own.shape[1])
    model_params = model.init(init_key, jnp.concatenate([s_own[:1], a_own[:1]], axis=1))
    batch = min(config.batch_size, int(fit_rows.shape[0]))

    def model_loss(params, key):
        rows = fit_rows[jax.random.randint(key, (batch,), 0, fit_rows.shape[0])]
        inputs = jnp.concatenate([s_own[rows], a_own[rows]], axis=1)
        delta = model.apply(params, inputs)
        return jnp.mean(jnp.sum((s_own[rows] + delta - next_own[rows]) ** 2, axis=-1))

    model_params, model_losses = fit(
        model_params, model_loss, config.model_steps, config.learning_rate, model_key
    )

    def predict(s, a):
        return s + model.apply(model_params, jnp.concatenate([s, a], axis=1))

    held_error = float(
        jnp.sqrt(jnp.mean((predict(s_own[held], a_own[held]) - next_own[held]) ** 2))
    )
    produced = predict(s_demo, a_demo)

    # 3. the discriminator: producible (1) against demonstrated (0), same states
    discriminator = MLP(tuple(config.discriminator_hidden_dims), 1)
    disc_params = discriminator.init(init_key, jnp.concatenate([s_demo[:1], next_demo[:1]], 1))
    n_demo = s_demo.shape[0]
    batch = min(config.batch_size, n_demo)

    def logits(params, s, s_next):
        return discriminator.apply(params, jnp.concatenate([s, s_next], axis=1))[:, 0]

    def disc_loss(params, key):
        rows_key, noise_a, noise_b = jax.random.split(key, 3)
        rows = jax.random.randint(rows_key, (batch,), 0, n_demo)
        noisy_produced = produced[rows] + held_error * jax.random.normal(noise_a, (batch, 1))
        noisy_demo = next_demo[rows] + held_error * jax.random.normal(noise_b, (batch, 1))
        real = logits(params, s_demo[rows], noisy_produced)
        fake = logits(params, s_demo[rows], noisy_demo)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(real, 1.0)) + jnp.mean(
            optax.sigmoid_binary_cross_entropy(fake, 0.0)
        )

    disc_params, disc_losses = fit(
        disc_params, disc_loss, config.discriminator_steps, config.learning_rate, disc_key
    )
    # D / (1 - D) = exp(logit)
    ratio = np.exp(np.clip(np.asarray(logits(disc_params, s_demo, next_demo)), -30, 30))
    return np.clip(ratio, 0.0, 1.0), {
        "model_heldout_rmse": held_error,
        "model_final_loss": float(model_losses[-100:].mean()),
        "discriminator_final_loss": float(disc_losses[-100:].mean()),
    }


def episode_weights(
    demonstrations: Dataset, feasible: Dataset, config: Config | None = None
) -> tuple[np.ndarray, dict]:
    """Each demonstration's transferability weight (the mean over its steps) in [0, 1]."""
    per_step, diagnostics = step_transferability(demonstrations, feasible, config)
    return episode_means(per_step, demonstrations), diagnostics
