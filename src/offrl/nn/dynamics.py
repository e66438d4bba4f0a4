"""Learned dynamics models."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.mlp import MLP


class ControlAffineDynamics(nn.Module):
    """``x_dot = f(x) + g(x) u``: two MLPs, ``f`` with ``D`` outputs and ``g`` with
    ``D * A`` (reshaped to ``[D, A]``). Returns ``(f [..., D], g [..., D, A])``.

    The time derivative is the one-step difference over ``dt`` (Euler): the model
    is fit so that ``x' ~ x + dt * (f(x) + g(x) u)``.
    """

    action_dim: int
    hidden_dims: Sequence[int] = (64, 64, 64)

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        dim = observations.shape[-1]
        f = MLP(self.hidden_dims, dim, name="drift")(observations)
        g = MLP(self.hidden_dims, dim * self.action_dim, name="control")(observations)
        return f, g.reshape(*observations.shape[:-1], dim, self.action_dim)

    @staticmethod
    def derivative(f: jax.Array, g: jax.Array, actions: jax.Array) -> jax.Array:
        return f + jnp.einsum("...da,...a->...d", g, actions)
