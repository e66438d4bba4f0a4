"""Sequence layers for policies that read a history: a causal transformer (the
Decision Transformer's GPT), a diagonal selective state-space layer (Decision
Mamba's backbone, written in JAX) and a recurrent history encoder.

Every layer is causal: the output at position ``t`` depends on inputs at
positions ``<= t`` only, so left-aligned windows with padding after the last
real step (:mod:`offrl.data.windows`) give the same outputs at real positions
as the unpadded sequence.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

#: GPT-2 / CORL ``dt.py`` initialization: weights N(0, 0.02), biases 0.
small_normal = nn.initializers.normal(0.02)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm causal self-attention and a 4x GELU MLP, each with a residual
    and dropout (CORL's ``TransformerBlock``)."""

    num_heads: int
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        width = x.shape[-1]
        causal = nn.make_causal_mask(jnp.ones(x.shape[:-1], bool))
        h = nn.LayerNorm()(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dropout_rate=self.attention_dropout,
            kernel_init=small_normal,
            deterministic=deterministic,
        )(h, h, mask=causal)
        x = x + nn.Dropout(self.residual_dropout)(h, deterministic=deterministic)
        h = nn.Dense(4 * width, kernel_init=small_normal)(nn.LayerNorm()(x))
        h = nn.Dense(width, kernel_init=small_normal)(nn.gelu(h, approximate=False))
        return x + nn.Dropout(self.residual_dropout)(h, deterministic=deterministic)


def _combine(left, right):
    """The associative operator of ``h_t = a_t * h_{t-1} + b_t``: applying ``left``
    then ``right`` is ``(a_r * a_l, a_r * b_l + b_r)``."""
    a_left, b_left = left
    a_right, b_right = right
    return a_right * a_left, a_right * b_left + b_right


def linear_recurrence(a: jax.Array, b: jax.Array, axis: int = 1) -> jax.Array:
    """``h_t = a_t * h_{t-1} + b_t`` with ``h_{-1} = 0`` for every ``t`` along ``axis``,
    by a parallel associative scan (``O(log T)`` depth)."""
    return jax.lax.associative_scan(_combine, (a, b), axis=axis)[1]


def linear_recurrence_loop(a: jax.Array, b: jax.Array, axis: int = 1) -> jax.Array:
    """The same recurrence by a plain sequential loop (the reference in the tests)."""
    a = jnp.moveaxis(a, axis, 0)
    b = jnp.moveaxis(b, axis, 0)
    h = jnp.zeros_like(b[0])
    out = []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return jnp.moveaxis(jnp.stack(out), 0, axis)


def _s4d_real(_, shape):
    """``log(1..N)`` for every channel: ``A = -(1..N)`` (S4D-real, Mamba's init)."""
    return jnp.log(jnp.broadcast_to(jnp.arange(1, shape[1] + 1, dtype=jnp.float32), shape))


class SelectiveSSM(nn.Module):
    """A diagonal selective state-space layer (Mamba's S6, without its CUDA kernel).

    ``x [B, T, D] -> y [B, T, D]``: ``u, z = split(W_in x)``, ``u = silu(causal_conv(u))``;
    per channel ``e`` and state ``n``, with input-dependent step ``delta_t = softplus(W_d u_t)``
    and projections ``B_t = W_B u_t``, ``C_t = W_C u_t``:
    ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``, ``y_t = C_t h_t + D u_t``; the
    output is ``W_out (y * silu(z))``. ``A = -exp(A_log)`` is initialized to
    ``-(1..N)`` (S4D-real), as Mamba does. The recurrence runs as an associative scan
    (:func:`linear_recurrence`).
    """

    state_dim: int = 16
    expand: int = 2
    conv_width: int = 4
    parallel: bool = True
    """Associative scan (``False``: the sequential loop, for tests)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = x.shape[-1]
        inner = self.expand * width
        u, z = jnp.split(nn.Dense(2 * inner, use_bias=False)(x), 2, axis=-1)
        u = nn.Conv(inner, (self.conv_width,), padding=((self.conv_width - 1, 0),),
                    feature_group_count=inner)(u)  # fmt: skip
        u = nn.silu(u)
        delta = nn.softplus(
            nn.Dense(inner, bias_init=nn.initializers.constant(-4.6))(u)
        )  # [B, T, E]; softplus(-4.6) ~ 0.01 at init
        b_t = nn.Dense(self.state_dim, use_bias=False)(u)  # [B, T, N]
        c_t = nn.Dense(self.state_dim, use_bias=False)(u)  # [B, T, N]
        a_log = self.param("A_log", _s4d_real, (inner, self.state_dim))
        skip = self.param("D", nn.initializers.ones, (inner,))
        decay = jnp.exp(delta[..., None] * -jnp.exp(a_log))  # [B, T, E, N]
        drive = (delta * u)[..., None] * b_t[..., None, :]  # [B, T, E, N]
        recurrence = linear_recurrence if self.parallel else linear_recurrence_loop
        h = recurrence(decay, drive, axis=1)
        y = jnp.einsum("bten,btn->bte", h, c_t) + skip * u
        return nn.Dense(width, use_bias=False)(y * nn.silu(z))


class SSMBlock(nn.Module):
    """``x + Dropout(SelectiveSSM(LayerNorm(x)))`` (Mamba's residual block)."""

    state_dim: int = 16
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        h = SelectiveSSM(self.state_dim)(nn.LayerNorm()(x))
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic)


class HistoryEncoder(nn.Module):
    """A recurrent encoder of an observation history: stacked GRU or LSTM cells,
    ``phi_t = cell(phi_{t-1}, e(o_t))`` from a zero state, with ``e`` a one-layer ReLU
    embedding (or the observation itself, ``embed=False``: robomimic's BC-RNN).

    ``__call__(observations[B, K, O], next_observations=None)`` returns ``phi [B, K, Z]``
    (the top cell's output) and, given ``next_observations``, ``phi_next [B, K, Z]``:
    the encoding of the history ``o_0..o_t, o'_t`` (the cells applied once more to
    the state after ``o_t`` and to ``o'_t``), the next step's history even where the
    episode ends at ``t``.
    """

    features: int = 64
    layers: int = 1
    cell: str = "gru"
    embed: bool = True

    def setup(self):
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got '{self.cell}'")
        self.embedding = nn.Dense(self.features) if self.embed else None
        make = nn.GRUCell if self.cell == "gru" else nn.OptimizedLSTMCell
        self.cells = [make(self.features) for _ in range(self.layers)]

    def _zeros(self, batch: int, dtype):
        zeros = jnp.zeros((batch, self.features), dtype)
        return [zeros if self.cell == "gru" else (zeros, zeros) for _ in self.cells]

    def _step(self, carries, x):
        if self.embedding is not None:
            x = nn.relu(self.embedding(x))
        new = []
        for cell, carry in zip(self.cells, carries, strict=True):
            carry, x = cell(carry, x)
            new.append(carry)
        return new, x

    def __call__(self, observations: jax.Array, next_observations: jax.Array | None = None):
        carries = self._zeros(observations.shape[0], observations.dtype)
        all_carries, outputs = [], []
        for t in range(observations.shape[1]):
            carries, out = self._step(carries, observations[:, t])
            all_carries.append(carries)
            outputs.append(out)
        phi = jnp.stack(outputs, axis=1)
        if next_observations is None:
            return phi
        nexts = [self._step(c, next_observations[:, t])[1] for t, c in enumerate(all_carries)]
        return phi, jnp.stack(nexts, axis=1)
