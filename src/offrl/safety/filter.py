"""Safety filters: the smallest change to a nominal action that keeps a barrier safe.

Both filters solve, per state, ``min ||u - u_nom||^2`` over the action box
``low <= u <= high`` subject to one linear constraint ``a . u + b >= 0``:

- **CBF-QP** (model-based; Ames et al.'s control barrier function condition
  with V-OCBF's learned barrier ``B`` and a learned control-affine model
  ``x' = f(x) + g(x) u``)::

      grad B(x) . (f(x) + g(x) u) + alpha * B(x) >= 0
      a = g(x)^T grad B(x),  b = grad B(x) . f(x) + alpha * B(x)

- **Qc filter** (model-free): keep ``Qc(x, u) >= 0`` directly. ``Qc`` is not
  linear in ``u``, so the constraint is linearized at the current action and
  the projection repeated (sequential quadratic programming), starting from
  ``u_nom``.

:func:`project_halfspace_box` solves the single-constraint QP with the box
exactly. By the KKT conditions the solution is ``u(lam) = clip(u_nom + lam a,
low, high)`` for the smallest ``lam >= 0`` with ``a . u(lam) + b >= 0``;
``phi(lam) = a . u(lam) + b`` is nondecreasing and piecewise linear with
breakpoints where a coordinate enters or leaves the box, so the root is found by
evaluating ``phi`` at the breakpoints and interpolating on the bracketing
segment (no iteration, no tolerance). Without active bounds this is the
closed form ``u = u_nom - min(0, a . u_nom + b) / ||a||^2 a`` of the released
V-OCBF code (which projects first and clips after; that is not the QP's
solution when a bound is active). When no action in the box satisfies the
constraint, the box corner that maximizes ``a . u`` (least violation) is
returned and ``feasible`` is False.

Everything here is jit-able and batched with ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

_EPS = 1e-12


def project_halfspace_box(u_nom, a, b, low, high):
    """``argmin ||u - u_nom||^2`` s.t. ``a . u + b >= 0``, ``low <= u <= high``.

    Args:
        u_nom, a, low, high: ``[A]``; ``b``: scalar. ``u_nom`` need not lie in the box.

    Returns:
        ``(u, feasible)``: the solution ``[A]`` and whether the constraint can be met.
    """
    u0 = jnp.clip(u_nom, low, high)

    def phi(lam):
        return a @ jnp.clip(u_nom + lam * a, low, high) + b

    # Breakpoints: where coordinate i enters or leaves the box along u_nom + lam * a
    # (it can start outside the box when u_nom does).
    safe_a = jnp.where(jnp.abs(a) > _EPS, a, 1.0)
    crossings = jnp.stack([(low - u_nom) / safe_a, (high - u_nom) / safe_a])  # [2, A]
    crossings = jnp.where(jnp.abs(a) > _EPS, jnp.maximum(crossings, 0.0), 0.0).reshape(-1)
    lams = jnp.sort(jnp.concatenate([jnp.zeros_like(crossings[:1]), crossings]))  # [2A + 1]
    values = jax.vmap(phi)(lams)  # nondecreasing
    feasible = values[-1] >= 0.0
    # The first breakpoint where phi >= 0; phi is linear between it and the one before.
    k = jnp.argmax(values >= 0.0)
    lo_lam, hi_lam = lams[jnp.maximum(k - 1, 0)], lams[k]
    lo_val, hi_val = values[jnp.maximum(k - 1, 0)], values[k]
    slope = (hi_val - lo_val) / jnp.maximum(hi_lam - lo_lam, _EPS)
    lam = jnp.where(k == 0, lams[0], lo_lam + (0.0 - lo_val) / jnp.where(slope > 0, slope, 1.0))
    lam = jnp.clip(lam, lo_lam, hi_lam)
    # Nothing to do when the (clipped) nominal action already satisfies the constraint.
    solved = jnp.where(phi(0.0) >= 0.0, u0, jnp.clip(u_nom + lam * a, low, high))
    corner = jnp.where(a > 0, high, jnp.where(a < 0, low, u0))
    return jnp.where(feasible, solved, corner), feasible


def cbf_constraint(barrier: Callable, dynamics: Callable, x, alpha: float):
    """``(a, b, B(x))`` of the CBF condition ``a . u + b >= 0`` at one state ``x [D]``.

    ``barrier(x) -> scalar``; ``dynamics(x) -> (f [D], g [D, A])``.
    """
    value, grad = jax.value_and_grad(barrier)(x)
    f, g = dynamics(x)
    return grad @ g, grad @ f + alpha * value, value


def cbf_filter(barrier: Callable, dynamics: Callable, x, u_nom, low, high, alpha: float = 1.0):
    """The CBF-QP filtered action at one state; returns ``(u, info)``."""
    a, b, value = cbf_constraint(barrier, dynamics, x, alpha)
    u, feasible = project_halfspace_box(u_nom, a, b, low, high)
    nominal_ok = a @ jnp.clip(u_nom, low, high) + b >= 0.0
    return u, {"barrier": value, "feasible": feasible, "intervened": ~nominal_ok}


def qc_filter(qc: Callable, x, u_nom, low, high, iterations: int = 5, margin: float = 0.0):
    """The model-free filtered action at one state: ``Qc(x, u) >= margin`` by
    ``iterations`` linearize-and-project steps from ``u_nom``; returns ``(u, info)``.

    ``qc(x, u) -> scalar`` (e.g. the minimum over a critic ensemble).
    """
    u0 = jnp.clip(u_nom, low, high)
    q0 = qc(x, u0)

    def step(u, _):
        value, grad = jax.value_and_grad(lambda v: qc(x, v))(u)
        # Linearized constraint q(u) + grad . (v - u) >= margin  <=>  grad . v + b >= 0.
        b = value - margin - grad @ u
        v, _ = project_halfspace_box(u_nom, grad, b, low, high)
        return jnp.where(value >= margin, u, v), None

    u, _ = jax.lax.scan(step, u0, None, length=iterations)
    u = jnp.where(q0 >= margin, u0, u)
    return u, {"barrier": q0, "feasible": qc(x, u) >= margin, "intervened": q0 < margin}
