"""Policies: deterministic tanh, tanh-squashed Gaussian, and a plain Gaussian.

Actions live in ``[-1, 1]`` inside the networks; the trainer maps them to and
from the environment's bounds (see :mod:`offrl.data.normalization`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.mlp import MLP

_LOG_2PI = math.log(2.0 * math.pi)


class DeterministicPolicy(nn.Module):
    """``a = tanh(MLP(s))`` (TD3, TD3+BC, deterministic BC)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, observations, deterministic: bool = True) -> jax.Array:
        x = MLP(
            self.hidden_dims,
            self.action_dim,
            layer_norm=self.layer_norm,
            dropout_rate=self.dropout_rate,
        )(observations, deterministic)
        return jnp.tanh(x)


class GaussianPolicy(nn.Module):
    """A diagonal Gaussian; returns ``(mean, log_std)``.

    Attributes:
        tanh_squash: when True the distribution is a tanh-squashed Gaussian
            (SAC, CQL) and ``mean`` is the pre-squash mean; when False the mean
            itself is passed through tanh and samples are not squashed (IQL).
        state_dependent_std: ``log_std`` from the network (SAC) or a free
            parameter per action dimension (IQL).
        log_std_min, log_std_max: clipping bounds for ``log_std``.
    """

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    tanh_squash: bool = True
    state_dependent_std: bool = True
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, observations, deterministic: bool = True):
        features = MLP(
            self.hidden_dims, layer_norm=self.layer_norm, dropout_rate=self.dropout_rate
        )(observations, deterministic)
        mean = nn.Dense(self.action_dim)(features)
        if self.state_dependent_std:
            log_std = nn.Dense(self.action_dim)(features)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
            log_std = jnp.broadcast_to(log_std, mean.shape)
        if not self.tanh_squash:
            mean = jnp.tanh(mean)
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        return mean, log_std


def gaussian_log_prob(mean, log_std, x) -> jax.Array:
    """Log density of a diagonal Gaussian, summed over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)


def tanh_correction(pre_tanh) -> jax.Array:
    """``sum log(1 - tanh(u)^2)`` in the numerically stable form."""
    return jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def sample_tanh_gaussian(mean, log_std, key) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample ``a = tanh(mean + std * eps)`` and its log density."""
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    log_prob = gaussian_log_prob(mean, log_std, pre_tanh) - tanh_correction(pre_tanh)
    return jnp.tanh(pre_tanh), log_prob


def tanh_gaussian_action(mean, log_std, key, deterministic: bool) -> jax.Array:
    """A tanh-squashed Gaussian policy's action: ``tanh(mean)``, or a sample
    ``tanh(mean + std * eps)`` (the act of SAC, CQL, Cal-QL, RLPD, H2O and Gaussian BC)."""
    if deterministic:
        return jnp.tanh(mean)
    return jnp.tanh(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape))


def tanh_gaussian_log_prob(mean, log_std, actions, eps: float = 1e-6) -> jax.Array:
    """Log density of given actions in ``(-1, 1)`` under a tanh-squashed Gaussian."""
    clipped = jnp.clip(actions, -1.0 + eps, 1.0 - eps)
    pre_tanh = jnp.arctanh(clipped)
    return gaussian_log_prob(mean, log_std, pre_tanh) - tanh_correction(pre_tanh)


def sample_gaussian(mean, log_std, key) -> tuple[jax.Array, jax.Array]:
    """Sample of an unsquashed diagonal Gaussian and its log density."""
    x = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return x, gaussian_log_prob(mean, log_std, x)
