"""d3rlpy on offrl's suite datasets: score and wall time at a given update count.

Exports each dataset's arrays, trains d3rlpy's TD3+BC and IQL in d3rlpy's own
environment (benchmarks/setup_d3rlpy.sh; settings of d3rlpy's reproduction
scripts, see d3rlpy_train_worker.py) and evaluates the final policy with
offrl's protocol (deterministic actions, resets 10000 + i), normalized with
offrl's reference returns. Finished cells in the output file are kept, so an
interrupted comparison continues.

    python benchmarks/d3rlpy_scores.py --datasets hopper-medium,hopper-medium-replay \
        --algorithms td3_bc,iql --seeds 0,1,2 --updates 100000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
VENV = pathlib.Path(os.environ.get("D3RLPY_VENV", pathlib.Path.home() / ".cache/offrl/d3rlpy-venv"))


def export_arrays(name: str, directory: pathlib.Path) -> tuple[pathlib.Path, str]:
    from offrl.suites import load_suite_dataset

    dataset = load_suite_dataset(name).to_numpy()
    path = directory / f"{name}.npz"
    np.savez(
        path,
        observations=np.asarray(dataset.observations, np.float32),
        actions=np.asarray(dataset.actions, np.float32),
        rewards=np.asarray(dataset.rewards, np.float32),
        terminations=np.asarray(dataset.terminations),
        truncations=np.asarray(dataset.truncations),
    )
    return path, dataset.info.env_id


def main() -> None:
    from offrl.envs.registry import get_task, normalized_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--algorithms", default="td3_bc,iql")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--output", default=str(HERE / "results" / "d3rlpy-scores.json"))
    args = parser.parse_args()
    subprocess.run(["bash", str(HERE / "setup_d3rlpy.sh")], check=True)
    output = pathlib.Path(args.output)
    cells = json.loads(output.read_text()) if output.exists() else []
    done = {(c["dataset"], c["algorithm"], c["seed"], c["updates"]) for c in cells}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            arrays, env_id = export_arrays(name, pathlib.Path(tmp))
            for algorithm in args.algorithms.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    if (name, algorithm, seed, args.updates) in done:
                        continue
                    started = time.perf_counter()
                    line = (
                        subprocess.run(
                            [
                                str(VENV / "bin" / "python"),
                                str(HERE / "d3rlpy_train_worker.py"),
                                str(arrays),
                                algorithm,
                                str(args.updates),
                                str(seed),
                                env_id,
                                str(args.episodes),
                            ],
                            check=True,
                            capture_output=True,
                            text=True,
                        )
                        .stdout.strip()
                        .splitlines()[-1]
                    )
                    cell = json.loads(line)
                    returns = np.asarray(cell["returns"])
                    cell.update(
                        dataset=name,
                        env_id=env_id,
                        wall_seconds=time.perf_counter() - started,
                        return_mean=float(returns.mean()),
                        score=float(np.mean(normalized_score(returns, get_task(env_id)))),
                        date=time.strftime("%Y-%m-%d"),
                    )
                    cells.append(cell)
                    output.parent.mkdir(parents=True, exist_ok=True)
                    output.write_text(json.dumps(cells, indent=1) + "\n")
                    print(
                        f"{name} {algorithm} seed {seed}: score {cell['score']:.1f} "
                        f"({cell['train_seconds']:.0f} s for {args.updates} updates)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
