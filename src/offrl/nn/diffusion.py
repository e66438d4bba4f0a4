"""Elucidated diffusion (EDM, Karras et al. 2022) over flat vectors, and the
residual-MLP denoiser SynthER uses (Lu et al. 2023).

The denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` is trained by
the weighted denoising loss ``lambda(sigma) |D(x + sigma n; sigma) - x|^2`` (mean
over dimensions), ``ln sigma ~ N(P_mean, P_std^2)``,
``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``. Samples come from
EDM's stochastic Heun sampler: ``num_steps`` noise levels from ``sigma_max`` to
``sigma_min`` on the ``rho`` schedule (then 0), each step raising the noise by
``gamma = min(S_churn / N, sqrt(2) - 1)`` where ``S_tmin <= sigma <= S_tmax``,
an Euler step and a second-order correction except into ``sigma = 0``.

Settings are those of SynthER's released configuration (``EDMConfig()``):
``sigma_data = 1`` (the data are standardized), 128 sampling steps,
``S_churn = 80``, ``S_tmin = 0.05``, ``S_tmax = 50``, ``S_noise = 1.003``.
The functions are pure: a denoiser is any ``apply(params, x, c_noise)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Apply = Callable[[object, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class EDMConfig:
    """EDM's noise levels, training distribution and sampler."""

    sigma_min: float = 0.002
    """Smallest noise level of the sampler."""
    sigma_max: float = 80.0
    """Largest noise level (the sampler starts from N(0, sigma_max^2))."""
    sigma_data: float = 1.0
    """Standard deviation of the (standardized) data."""
    rho: float = 7.0
    """Curvature of the sampler's noise schedule."""
    p_mean: float = -1.2
    """Mean of ln(sigma) in training."""
    p_std: float = 1.2
    """Standard deviation of ln(sigma) in training."""
    sample_steps: int = 128
    """Noise levels of the sampler (SynthER: 128)."""
    s_churn: float = 80.0
    """Stochasticity of the sampler (0: the deterministic Heun ODE solver)."""
    s_tmin: float = 0.05
    """Noise is added only at levels in [s_tmin, s_tmax]."""
    s_tmax: float = 50.0
    """See s_tmin."""
    s_noise: float = 1.003
    """Scale of the added noise."""


def preconditioning(sigma: jax.Array, sigma_data: float):
    """``(c_skip, c_out, c_in, c_noise)`` of EDM's Table 1 for noise level ``sigma``."""
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)
    c_in = 1.0 / jnp.sqrt(sigma**2 + sigma_data**2)
    c_noise = 0.25 * jnp.log(sigma)
    return c_skip, c_out, c_in, c_noise


def denoise(apply: Apply, params, x: jax.Array, sigma: jax.Array, config: EDMConfig):
    """``D(x; sigma)``: the preconditioned network's estimate of the clean ``x``;
    ``sigma`` is a scalar or one level per row."""
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
    c_skip, c_out, c_in, c_noise = preconditioning(sigma[:, None], config.sigma_data)
    return c_skip * x + c_out * apply(params, c_in * x, c_noise[:, 0])


def loss_weight(sigma: jax.Array, sigma_data: float) -> jax.Array:
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def denoising_loss(apply: Apply, params, x: jax.Array, key: jax.Array, config: EDMConfig):
    """EDM's training loss on a batch ``x`` (``[B, D]``, already standardized)."""
    sigma_key, noise_key = jax.random.split(key)
    sigma = jnp.exp(config.p_mean + config.p_std * jax.random.normal(sigma_key, x.shape[:1]))
    noise = jax.random.normal(noise_key, x.shape)
    estimate = denoise(apply, params, x + sigma[:, None] * noise, sigma, config)
    per_row = jnp.mean((estimate - x) ** 2, axis=-1)
    return jnp.mean(per_row * loss_weight(sigma, config.sigma_data))


def noise_levels(config: EDMConfig) -> jax.Array:
    """The sampler's ``num_steps + 1`` levels, ``sigma_max`` down to ``sigma_min``, then 0."""
    steps = jnp.arange(config.sample_steps, dtype=jnp.float32)
    inv_rho = 1.0 / config.rho
    levels = (
        config.sigma_max**inv_rho
        + steps
        / max(config.sample_steps - 1, 1)
        * (config.sigma_min**inv_rho - config.sigma_max**inv_rho)
    ) ** config.rho
    return jnp.concatenate([levels, jnp.zeros(1)])


def churn(sigma: jax.Array, config: EDMConfig) -> jax.Array:
    """The noise increase ``gamma`` at level ``sigma``."""
    gamma = min(config.s_churn / config.sample_steps, math.sqrt(2.0) - 1.0)
    return jnp.where((sigma >= config.s_tmin) & (sigma <= config.s_tmax), gamma, 0.0)


def sampler_step(
    apply: Apply,
    params,
    x: jax.Array,
    sigma: jax.Array,
    sigma_next: jax.Array,
    noise: jax.Array,
    config: EDMConfig,
) -> jax.Array:
    """One step of EDM's stochastic Heun sampler from level ``sigma`` to ``sigma_next``
    (``noise``: a standard normal draw shaped like ``x``)."""
    gamma = churn(sigma, config)
    sigma_hat = sigma * (1.0 + gamma)
    # sqrt(sigma_hat^2 - sigma^2), written so that gamma = 0 gives exactly 0 (fused
    # multiply-adds under jit can make the difference of squares slightly negative).
    x_hat = x + sigma * jnp.sqrt(gamma * (2.0 + gamma)) * config.s_noise * noise
    slope = (x_hat - denoise(apply, params, x_hat, sigma_hat, config)) / sigma_hat
    euler = x_hat + (sigma_next - sigma_hat) * slope
    safe_next = jnp.where(sigma_next > 0, sigma_next, 1.0)
    slope_next = (euler - denoise(apply, params, euler, safe_next, config)) / safe_next
    heun = x_hat + 0.5 * (sigma_next - sigma_hat) * (slope + slope_next)
    return jnp.where(sigma_next > 0, heun, euler)


def sample(apply: Apply, params, key: jax.Array, count: int, dim: int, config: EDMConfig):
    """``count`` samples ``[count, dim]`` in the standardized space (jit-able)."""
    levels = noise_levels(config)
    start_key, *step_keys = jax.random.split(key, config.sample_steps + 1)
    x = levels[0] * jax.random.normal(start_key, (count, dim))

    def step(x, inputs):
        sigma, sigma_next, step_key = inputs
        noise = jax.random.normal(step_key, x.shape)
        return sampler_step(apply, params, x, sigma, sigma_next, noise, config), None

    x, _ = jax.lax.scan(step, x, (levels[:-1], levels[1:], jnp.stack(step_keys)))
    return x


class ResidualMLPDenoiser(nn.Module):
    """SynthER's denoiser: the input projected to ``time_dim`` plus a time embedding
    (random Fourier features of ``c_noise``, fixed, then Dense-SiLU-Dense), a Dense to
    ``width``, ``depth`` residual blocks ``h + Dense(relu(h))`` (no LayerNorm, as
    released), then ``Dense(relu(h))`` to the data's width."""

    dim: int
    width: int = 2048
    depth: int = 6
    time_dim: int = 128
    fourier_dim: int = 16

    @nn.compact
    def __call__(self, x: jax.Array, c_noise: jax.Array) -> jax.Array:
        frequencies = self.param(
            "fourier_frequencies", nn.initializers.normal(1.0), (self.fourier_dim // 2,)
        )
        frequencies = jax.lax.stop_gradient(frequencies)  # random, not learned (released)
        t = c_noise[:, None]
        angles = 2.0 * jnp.pi * t * frequencies[None, :]
        embedding = jnp.concatenate([t, jnp.sin(angles), jnp.cos(angles)], axis=-1)
        embedding = nn.Dense(self.time_dim)(nn.silu(nn.Dense(self.time_dim)(embedding)))
        h = nn.Dense(self.time_dim)(x) + embedding
        h = nn.Dense(self.width)(h)
        for _ in range(self.depth):
            h = h + nn.Dense(self.width)(nn.relu(h))
        return nn.Dense(self.dim)(nn.relu(h))
