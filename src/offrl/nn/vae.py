"""A beta-VAE over flat vectors: MLP encoder to a diagonal Gaussian, MLP decoder."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.mlp import MLP


class VAE(nn.Module):
    """``x -> (reconstruction, mean, log_var)``; ``encode`` gives ``q(z|x)``'s moments."""

    input_dim: int
    latent_dim: int
    hidden_dims: Sequence[int] = (256, 256)

    def setup(self):
        self.encoder = MLP(tuple(self.hidden_dims), 2 * self.latent_dim)
        self.decoder = MLP(tuple(reversed(tuple(self.hidden_dims))), self.input_dim)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, log_var = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, jnp.clip(log_var, -10.0, 10.0)

    def __call__(self, x: jax.Array, key: jax.Array):
        mean, log_var = self.encode(x)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
        return self.decoder(z), mean, log_var


def vae_loss(reconstruction, x, mean, log_var, beta: float):
    """``E ||x - x_hat||^2 + beta KL(q(z|x) || N(0, I))``, each summed over dimensions and
    averaged over the batch; returns ``(loss, (reconstruction_error, kl))``."""
    reconstruction_error = jnp.sum((reconstruction - x) ** 2, axis=-1).mean()
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1).mean()
    return reconstruction_error + beta * kl, (reconstruction_error, kl)
