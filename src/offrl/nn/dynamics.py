"""Learned dynamics models."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.mlp import MLP, ensemble


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


def _fan_in_normal(key, shape, dtype=jnp.float32):
    # OfflineRL-Kit's EnsembleLinear: truncated normal with std 1 / (2 sqrt(fan_in)),
    # truncated at +-2 (absolute), which at these widths cuts nothing: a plain normal.
    return jax.random.normal(key, shape, dtype) / (2.0 * jnp.sqrt(shape[0]))


class _GaussianMember(nn.Module):
    hidden_dims: Sequence[int]
    output_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for width in self.hidden_dims:
            x = nn.swish(nn.Dense(width, kernel_init=_fan_in_normal)(x))
        out = nn.Dense(2 * self.output_dim, kernel_init=_fan_in_normal)(x)
        return out[..., : self.output_dim], out[..., self.output_dim :]


class GaussianEnsemble(nn.Module):
    """``num_models`` Gaussian models, each ``N(mean, exp(logvar))`` of ``output_dim``
    values (offrl's dynamics: the change of state, then the reward) from one input row
    (the standardized state and action), evaluated as one vmapped network.

    Swish MLPs; the log-variance is soft-clamped between two learned bounds shared by
    the members (PETS, MBPO and OfflineRL-Kit's ``EnsembleDynamicsModel``)::

        logvar = max - softplus(max - logvar);  logvar = min + softplus(logvar - min)

    with ``max`` starting at 0.5 and ``min`` at -10. Inputs ``[B, in]`` are shared by
    the members, ``[N, B, in]`` give each member its own rows; outputs are
    ``(mean, logvar)``, each ``[N, B, output_dim]``.
    """

    output_dim: int
    num_models: int = 7
    hidden_dims: Sequence[int] = (200, 200, 200, 200)

    @nn.compact
    def __call__(self, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        in_axes = 0 if inputs.ndim == 3 else None
        members = ensemble(_GaussianMember, self.num_models, in_axes=in_axes)
        mean, logvar = members(tuple(self.hidden_dims), self.output_dim, name="members")(inputs)
        dim = (self.output_dim,)
        max_logvar = self.param("max_logvar", nn.initializers.constant(0.5), dim)
        min_logvar = self.param("min_logvar", nn.initializers.constant(-10.0), dim)
        logvar = max_logvar - nn.softplus(max_logvar - logvar)
        logvar = min_logvar + nn.softplus(logvar - min_logvar)
        return mean, logvar
