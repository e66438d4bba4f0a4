"""Model rollouts per second: the dynamics ensemble's step at OfflineRL-Kit's size.

Times ``offrl.model.rollouts.rollout`` (a jitted scan of ``h`` model steps with a
policy and the aleatoric penalty) for Pendulum's and Hopper's dimensions and for the
batch sizes the methods use (MOPO's per-update 50 starts, AM-Q's 512, a full 50,000-row
rollout). The ensemble is untrained: a step costs the same whatever its weights.

    python benchmarks/model_throughput.py --output benchmarks/results/model-throughput.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp

from offrl.envs.termination import never
from offrl.model import ensemble, rollouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    spec = ensemble.ModelSpec()
    rows = []
    for task, obs_dim, act_dim in (("pendulum", 3, 1), ("hopper", 11, 3)):
        model = ensemble.init(spec, obs_dim, act_dim, jax.random.PRNGKey(0))
        for batch in (50, 512, 50_000):

            @jax.jit
            def run(starts, key, model=model, act_dim=act_dim):
                def act(observations, k):
                    return jax.random.uniform(k, (observations.shape[0], act_dim), minval=-1)

                out, valid, _ = rollouts.rollout(
                    spec, model, act, starts, args.horizon, key, never, "aleatoric", 1.0
                )
                return out["rewards"].sum() + valid.sum()

            starts = jnp.zeros((batch, obs_dim), jnp.float32)
            run(starts, jax.random.PRNGKey(0)).block_until_ready()  # compile
            times = []
            for r in range(args.repeats):
                began = time.perf_counter()
                run(starts, jax.random.PRNGKey(r + 1)).block_until_ready()
                times.append(time.perf_counter() - began)
            best = min(times)
            rows.append(
                {
                    "task": task,
                    "batch": batch,
                    "horizon": args.horizon,
                    "seconds": best,
                    "model_steps_per_second": batch * args.horizon / best,
                }
            )
            print(rows[-1], flush=True)
    out = {"machine": platform.processor() or platform.machine(), "rows": rows}
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
