"""Updates per second: offrl against d3rlpy on the same arrays, alternating in one run.

Setup (once): ``bash benchmarks/setup_d3rlpy.sh`` (d3rlpy in its own virtual
environment). Then::

    python benchmarks/throughput.py [--algorithms bc td3_bc iql cql] [--repeats 3]

Arrays: 100k transitions with Hopper's shapes (11-D observations, 3-D
actions), batch 256, 256x256 networks for every algorithm, each library's
default hyperparameters otherwise. Each measurement excludes compilation and
warm-up and includes sampling the batch. offrl runs ``steps_per_call`` updates
per jitted call (its default, 1000; 100 for CQL and for the vmapped runs, to
keep each measurement short); d3rlpy runs its ``update(batch)`` loop.

Also measured in the same run: the machine's float32 matmul throughput
(2048x2048, best of 10) and, from XLA's cost analysis of one update, the
FLOP/s an offrl update reaches as a share of it. ``--seeds 8`` adds offrl
with 8 seeds under vmap (updates per second per seed and in total).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_VENV = pathlib.Path.home() / ".cache" / "offrl" / "d3rlpy-venv"


def make_arrays(n: int = 100_000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    terminations = np.zeros(n, bool)
    truncations = np.zeros(n, bool)
    truncations[999::1000] = True  # 100 episodes of 1000 steps
    observations = rng.normal(size=(n, 11)).astype(np.float32)
    return {
        "observations": observations,
        "next_observations": np.roll(observations, -1, axis=0),
        "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminations": terminations,
        "truncations": truncations,
    }


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


#: offrl settings where the 256x256 default does not apply or sizes must match d3rlpy's
#: (d3rlpy_worker.py): ensembles of 10 critics; DT with d3rlpy's default depth (3
#: layers, context 20) at width 128, batch 64.
OFFRL_SETTINGS = {
    "edac": {"hidden_dims": (256, 256), "num_critics": 10},
    "sac_n": {"hidden_dims": (256, 256), "num_critics": 10},
    "dt": {"embedding_dim": 128, "num_layers": 3, "context_length": 20},
}
BATCH_SIZES = {"dt": 64}


class OffrlBench:
    def __init__(self, arrays, algorithm: str, num_seeds: int = 1, steps_per_call: int = 1000):
        from offrl.core import registry
        from offrl.core.trainer import (
            build_chunk,
            fill_run_length,
            init_states,
            seed_keys,
            window_length,
        )
        from offrl.data import Dataset, DatasetInfo

        self.algo = registry.get(algorithm)
        config = self.algo.Config(**OFFRL_SETTINGS.get(algorithm, {"hidden_dims": (256, 256)}))
        self.config = fill_run_length(config, 1_000_000)
        n = len(arrays["rewards"])
        dataset = Dataset(
            **arrays,
            episode_starts=np.arange(0, n, 1000),
            episode_lengths=np.full(n // 1000, 1000),
            info=DatasetInfo(name="throughput"),
        )
        prepare = getattr(self.algo, "prepare_dataset", lambda d, c: d)  # e.g. DT's returns
        self.dataset = prepare(dataset, self.config).to_device()
        batch_size = BATCH_SIZES.get(algorithm, 256)
        init_keys, self.keys = seed_keys(tuple(range(num_seeds)))
        self.states = init_states(self.algo, self.config, 11, 3, init_keys)
        self.chunk = build_chunk(self.algo, self.config, batch_size, steps_per_call)
        self.steps_per_call = steps_per_call
        start = time.perf_counter()
        self._call()
        self.compile_seconds = time.perf_counter() - start
        self.flops_per_update = float("nan")
        if window_length(self.algo, self.config) is None:  # XLA's count of one update
            batch = {  # every field the update reads (ReBRAC's next_actions too)
                k: jnp.zeros((256,) + v.shape[1:], jnp.float32)
                for k, v in self.dataset.step_fields().items()
            }
            state = jax.tree_util.tree_map(lambda x: x[0], self.states)
            update = jax.jit(lambda s, b: self.algo.update(s, b, self.config))
            cost = update.lower(state, batch).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, list | tuple) else cost
            self.flops_per_update = float(cost.get("flops", float("nan")))

    def _call(self):
        self.states, self.keys, metrics = self.chunk(self.states, self.keys, self.dataset)
        jax.block_until_ready(self.states)

    def measure(self, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            self._call()
        return calls * self.steps_per_call / (time.perf_counter() - start)


def d3rlpy_updates_per_second(
    python: pathlib.Path, arrays_path: pathlib.Path, algorithm: str, updates: int
) -> dict:
    out = subprocess.run(
        [
            str(python),
            str(HERE / "d3rlpy_worker.py"),
            str(arrays_path),
            algorithm,
            str(max(10, updates // 10)),
            str(updates),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=["bc", "td3_bc", "iql", "cql"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="target duration of each measurement"
    )
    parser.add_argument(
        "--seeds", type=int, default=0, help="also measure offrl with this many seeds under vmap"
    )
    parser.add_argument(
        "--d3rlpy-python", type=pathlib.Path, default=DEFAULT_VENV / "bin" / "python"
    )
    parser.add_argument("--no-d3rlpy", action="store_true")
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        default=HERE / "results" / f"throughput-{datetime.date.today()}.json",
    )
    args = parser.parse_args()

    arrays = make_arrays()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    arrays_path = args.output.parent / "throughput-arrays.npz"
    np.savez(arrays_path, **arrays)
    use_d3rlpy = not args.no_d3rlpy and args.d3rlpy_python.exists()
    if not use_d3rlpy and not args.no_d3rlpy:
        print(
            f"d3rlpy python not found at {args.d3rlpy_python}; run benchmarks/setup_d3rlpy.sh",
            file=sys.stderr,
        )

    peak = matmul_gflops()
    print(f"matmul peak: {peak:.1f} GFLOP/s (float32, 2048x2048)", flush=True)
    # CQL, the 10-critic ensembles and DT run tens of updates/s here: 100 updates per
    # call keeps each measurement short.
    slow = ("cql", "edac", "sac_n", "dt")
    benches = {
        name: OffrlBench(arrays, name, steps_per_call=100 if name in slow else 1000)
        for name in args.algorithms
    }
    for name, bench in benches.items():
        print(
            f"offrl {name}: compiled in {bench.compile_seconds:.1f} s, "
            f"{bench.flops_per_update / 1e6:.0f} MFLOP per update",
            flush=True,
        )
    results: dict[str, dict[str, list[float]]] = {
        name: {"offrl": [], "d3rlpy": []} for name in args.algorithms
    }
    first_guess = {}
    for repeat in range(args.repeats):
        for name, bench in benches.items():
            # Size each measurement to take about --seconds.
            rate = first_guess.get(name) or bench.measure(1)
            first_guess[name] = rate
            calls = max(1, int(round(args.seconds * rate / bench.steps_per_call)))
            offrl_rate = bench.measure(calls)
            results[name]["offrl"].append(offrl_rate)
            line = f"[{repeat + 1}/{args.repeats}] {name}: offrl {offrl_rate:.1f} upd/s"
            if use_d3rlpy:
                guess = (
                    results[name]["d3rlpy"][0]
                    if results[name]["d3rlpy"]
                    else {"bc": 300, "td3_bc": 100, "iql": 100, "cql": 15}.get(name, 50)
                )
                peer = d3rlpy_updates_per_second(
                    args.d3rlpy_python, arrays_path, name, max(50, int(args.seconds * guess))
                )
                results[name]["d3rlpy"].append(peer["updates_per_second"])
                results[name]["d3rlpy_versions"] = {
                    "d3rlpy": peer["d3rlpy"],
                    "torch": peer["torch"],
                    "torch_threads": peer["torch_threads"],
                }
                line += f", d3rlpy {peer['updates_per_second']:.1f} upd/s"
            print(line, flush=True)

    vmapped = {}
    if args.seeds > 1:
        for name in args.algorithms:
            bench = OffrlBench(arrays, name, num_seeds=args.seeds, steps_per_call=100)
            rate = bench.measure(1)
            calls = max(1, int(round(args.seconds * rate / bench.steps_per_call)))
            rate = bench.measure(calls)
            vmapped[name] = {
                "seeds": args.seeds,
                "updates_per_second_per_seed": rate,
                "updates_per_second_total": rate * args.seeds,
            }
            print(
                f"offrl {name} x{args.seeds} seeds: {rate:.1f} upd/s per seed, "
                f"{rate * args.seeds:.1f} in total",
                flush=True,
            )

    rows = []
    for name in args.algorithms:
        offrl_median = statistics.median(results[name]["offrl"])
        flops = benches[name].flops_per_update
        row = {
            "algorithm": name,
            "offrl_updates_per_second": offrl_median,
            "offrl_runs": results[name]["offrl"],
            "gflops_per_second": offrl_median * flops / 1e9,
            "share_of_matmul_peak": offrl_median * flops / 1e9 / peak,
            "mflop_per_update": flops / 1e6,
        }
        if results[name]["d3rlpy"]:
            peer_median = statistics.median(results[name]["d3rlpy"])
            row.update(
                {
                    "d3rlpy_updates_per_second": peer_median,
                    "d3rlpy_runs": results[name]["d3rlpy"],
                    "ratio": offrl_median / peer_median,
                    "d3rlpy_share_of_matmul_peak": peer_median * flops / 1e9 / peak,
                }
            )
        if name in vmapped:
            row["vmap"] = vmapped[name]
        rows.append(row)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
        },
        "matmul_gflops": peak,
        "d3rlpy_versions": next(
            (
                results[n].get("d3rlpy_versions")
                for n in args.algorithms
                if results[n].get("d3rlpy_versions")
            ),
            None,
        ),
        "rows": rows,
    }
    args.output.write_text(json.dumps(report, indent=2))
    print()
    print(
        "| algorithm | offrl upd/s (median of runs) | d3rlpy upd/s | ratio | MFLOP/update | "
        "offrl GFLOP/s | share of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peer = row.get("d3rlpy_updates_per_second")
        peer_text = "-" if peer is None else f"{peer:.0f}"
        ratio_text = "-" if peer is None else f"{row['ratio']:.2f}x"
        print(
            f"| {row['algorithm']} | {row['offrl_updates_per_second']:.0f} | "
            f"{peer_text} | {ratio_text} | "
            f"{row['mflop_per_update']:.0f} | {row['gflops_per_second']:.1f} | "
            f"{100 * row['share_of_matmul_peak']:.0f}% |"
        )
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
