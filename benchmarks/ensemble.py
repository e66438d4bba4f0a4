"""A large critic ensemble on this CPU: one vmapped ensemble against N separate networks.

For N critics (3x256, batch 256, 17-D observations and 6-D actions, Hopper's sizes)
it times one gradient step of the ensemble MSE (forward and backward), compiled, in
three forms: ``vmap`` (offrl's ``QEnsemble``: parameters stacked on a leading axis,
one batched matmul per layer), ``unrolled`` (N separate networks in a Python loop
inside one jit) and ``scan`` (``lax.map`` over the members: one member's program,
run N times). Median of ``--repeats`` timed calls after a warm-up.

    python benchmarks/ensemble.py --members 2 10 50 200 \
        --output benchmarks/results/ensemble-cpu.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.nn import QEnsemble, QNetwork


def timed(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def forms(n: int, hidden, obs, act, target):
    """The ensemble's parameters and its loss in the three forms."""
    ensemble = QEnsemble(hidden, n)
    params = ensemble.init(jax.random.PRNGKey(0), obs, act)
    single = QNetwork(hidden)

    def member_loss(p):
        return ((single.apply({"params": p}, obs, act) - target) ** 2).mean()

    def unrolled(p):
        return sum(member_loss(jax.tree_util.tree_map(lambda x, i=i: x[i], p)) for i in range(n))

    return params, {
        "vmap": lambda p: ((ensemble.apply(p, obs, act) - target) ** 2).mean(1).sum(),
        "scan": lambda p: jax.lax.map(member_loss, p).sum(),
        "unrolled": unrolled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[2, 10, 50, 200])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(256, 17)), jnp.float32)
    act = jnp.asarray(rng.uniform(-1, 1, size=(256, 6)), jnp.float32)
    target = jnp.asarray(rng.normal(size=256), jnp.float32)
    hidden = (256, 256, 256)
    rows = []
    for n in args.members:
        params, losses = forms(n, hidden, obs, act, target)
        members = params["params"]["VmapQNetwork_0"]
        row = {"members": n}
        for name, fn, argument in (
            ("vmap", jax.jit(jax.grad(losses["vmap"])), params),
            ("scan", jax.jit(jax.grad(losses["scan"])), members),
            ("unrolled", jax.jit(jax.grad(losses["unrolled"])), members),
        ):
            if name == "unrolled" and n > 50:
                continue  # compile time grows with N (minutes at 200)
            began = time.perf_counter()
            seconds = timed(fn, argument, repeats=args.repeats)
            row[f"{name}_ms"] = 1000 * seconds
            row[f"{name}_with_compile_s"] = time.perf_counter() - began
        print(row, flush=True)
        rows.append(row)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s)",
        "jax": jax.__version__,
        "rows": rows,
    }
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
