"""State-action (Q) and state (V) value networks, single or as an ensemble."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.mlp import MLP, ensemble


class QNetwork(nn.Module):
    """``Q(s, a)``: an MLP on ``[s, a]`` with a scalar output. ``[B]``."""

    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, observations, actions, deterministic: bool = True) -> jax.Array:
        x = jnp.concatenate([observations, actions], axis=-1)
        q = MLP(self.hidden_dims, 1, layer_norm=self.layer_norm, dropout_rate=self.dropout_rate)(
            x, deterministic
        )
        return q.squeeze(-1)


class QEnsemble(nn.Module):
    """``num_members`` Q networks evaluated at once. Output ``[E, B]``."""

    hidden_dims: Sequence[int] = (256, 256)
    num_members: int = 2
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, observations, actions, deterministic: bool = True) -> jax.Array:
        members = ensemble(QNetwork, self.num_members)
        return members(self.hidden_dims, self.layer_norm, self.dropout_rate)(
            observations, actions, deterministic
        )


class VNetwork(nn.Module):
    """``V(s)``: an MLP on ``s`` with a scalar output. ``[B]``."""

    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, observations, deterministic: bool = True) -> jax.Array:
        v = MLP(self.hidden_dims, 1, layer_norm=self.layer_norm, dropout_rate=self.dropout_rate)(
            observations, deterministic
        )
        return v.squeeze(-1)
