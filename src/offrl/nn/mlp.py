"""The multilayer perceptron and the one ensemble helper."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """Dense layers with optional LayerNorm and dropout after each hidden layer.

    Attributes:
        hidden_dims: widths of the hidden layers, then ``output_dim`` if given.
        output_dim: width of a final linear layer (no activation), or ``None``.
        activation: the hidden activation.
        layer_norm: LayerNorm after each hidden Dense (RLPD / ReBRAC style).
        dropout_rate: dropout after each hidden activation; active when
            ``deterministic=False`` and a ``dropout`` rng is given.
        output_scale: scales the final layer's initial weights (small values
            start a policy near zero output).
    """

    hidden_dims: Sequence[int]
    output_dim: int | None = None
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    layer_norm: bool = False
    dropout_rate: float = 0.0
    output_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        for width in self.hidden_dims:
            x = nn.Dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = self.activation(x)
            if self.dropout_rate > 0.0:
                x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        if self.output_dim is not None:
            init = (
                nn.initializers.variance_scaling(self.output_scale**2 / 3.0, "fan_in", "uniform")
                if self.output_scale != 1.0
                else nn.linear.default_kernel_init
            )
            x = nn.Dense(self.output_dim, kernel_init=init)(x)
        return x


def ensemble(module_cls: type[nn.Module], size: int, in_axes=None) -> type[nn.Module]:
    """``size`` independent copies of ``module_cls`` evaluated as one vmapped module.

    Parameters get a leading axis of length ``size``; outputs too (``[E, ...]``).
    Inputs are shared across members unless ``in_axes`` says otherwise.
    """
    return nn.vmap(
        module_cls,
        variable_axes={"params": 0},
        split_rngs={"params": True, "dropout": True},
        in_axes=in_axes,
        out_axes=0,
        axis_size=size,
    )


def concat_inputs(*arrays: jax.Array) -> jax.Array:
    return jnp.concatenate(arrays, axis=-1)
