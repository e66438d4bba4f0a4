"""Math that several algorithms share, written once (each algorithm file keeps what
is its own)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_target(batch, discount: float, next_value):
    """``r + gamma * (1 - terminated) * V(s')``: a truncation is bootstrapped, a
    termination is not."""
    return batch["rewards"] + discount * (1.0 - batch["terminations"]) * next_value


def ensemble_mse(q, target):
    """Regression of an ensemble ``q [E, B]`` onto ``target [B]`` (no gradient
    through it): the mean squared error of each member, summed over members."""
    return ((q - jax.lax.stop_gradient(target)) ** 2).mean(axis=1).sum()


def expectile_loss(diff, expectile: float):
    """``|tau - 1(diff < 0)| * diff^2``, elementwise (IQL's value loss, V-OCBF's)."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff**2
