"""ONNX export: parity with JAX, latency and file size per algorithm.

Each algorithm is trained briefly (``--steps`` updates, one seed) on
``suite:pendulum-mixed`` (V-OCBF and TD3+BC-Lagrangian on ``suite:pointrobot-mixed``,
which has margins and costs; the model-based ones with their pre-fits capped), exported
with ``offrl export``, and compared with the jitted JAX policy:

- parity: the largest absolute action difference over ``--observations`` dataset
  observations (sequence policies: both stepped along dataset episodes, 50 at a time,
  each keeping its window: offrl's HistoryPolicy and offrl.deploy's Window);
- latency: the median of ``--repeats`` calls for one observation and a batch of 256,
  onnxruntime (one intra-op thread, as offrl.deploy loads by default) against
  ``jax.jit`` (the evaluation policy, blocked until ready);
- the file size.

    python benchmarks/export.py --output benchmarks/results/export.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import shutil
import tempfile
import time

import jax
import numpy as np

from offrl.core import registry
from offrl.data.loading import load_dataset
from offrl.deploy import load_policy
from offrl.evaluate.policy import load_policy as load_jax_policy
from offrl.export import ExportConfig, export_run
from offrl.run.train import TrainConfig, train

#: Pre-fits capped so that a model-based method trains in minutes here.
QUICK = {
    "mopo": dict(model_max_epochs=5),
    "mobile": dict(model_max_epochs=5),
    "uni_o4": dict(model_max_epochs=5, bc_steps=1000, value_steps=1000, critic_steps=1000),
}
SEQUENCE = ("dt", "mo_dt", "bc_rnn", "iql_history")
#: dmamba: its associative scan cannot be expressed in ONNX (export refuses).
SKIP = ("dmamba",)
#: The safety methods need costs or margins: they train on the point robot's data.
DATASETS = {"vocbf": "suite:pointrobot-mixed", "td3_bc_lag": "suite:pointrobot-mixed"}


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(name: str, work: pathlib.Path, args) -> dict:
    algo = registry.get(name)
    config = algo.Config(**QUICK.get(name, {}))
    run = work / name
    steps = args.sequence_steps if name in SEQUENCE else args.steps
    dataset = DATASETS.get(name, "suite:pendulum-mixed")
    data = load_dataset(dataset)
    start = time.time()
    train(name, dataset, run, config,
          TrainConfig(steps=steps, eval_every=0, checkpoint_every=steps,
                      heldout_episodes=0, seeds=(0,), progress=False))  # fmt: skip
    trained = time.time() - start
    [record] = export_run(ExportConfig(str(run), check_samples=0))
    policy = load_policy(record["path"])
    jax_policy, _ = load_jax_policy(run)
    key = jax.random.PRNGKey(0)
    if name in SEQUENCE:
        episodes, steps = 50, args.observations // 50
        starts = np.asarray(data.episode_starts)[:episodes]
        obs, act, rew = (np.asarray(x) for x in (data.observations, data.actions, data.rewards))
        jax_policy.reset_history()
        policy.reset()
        worst = 0.0
        for t in range(steps):
            o = obs[starts + t]
            expected = np.asarray(jax_policy(o[None], key))[0]
            got = policy(o)
            worst = max(worst, float(np.max(np.abs(got - expected))))
            jax_policy.record(act[starts + t][None], rew[starts + t][None])
            policy.record(act[starts + t], rew[starts + t])
        compared = episodes * steps
        one = obs[:1]
        batch = obs[:256]

        def onnx_one():
            policy.reset()
            policy(one)

        def onnx_batch():
            policy.reset()
            policy(batch)

        def jax_one():
            jax_policy.reset_history()
            np.asarray(jax_policy(one[None], key))

        def jax_batch():
            jax_policy.reset_history()
            np.asarray(jax_policy(batch[None], key))

    else:
        rows = np.random.default_rng(0).choice(data.size, args.observations, replace=False)
        observations = np.asarray(data.observations)[rows]
        expected = np.asarray(jax_policy(observations[None], key))[0]
        worst = float(np.max(np.abs(policy(observations) - expected)))
        compared = len(observations)
        one, batch = observations[:1], observations[:256]

        def onnx_one():
            policy(one)

        def onnx_batch():
            policy(batch)

        def jax_one():
            np.asarray(jax_policy(one[None], key))

        def jax_batch():
            np.asarray(jax_policy(batch[None], key))

    return {
        "algorithm": name,
        "dataset": dataset,
        "train_steps": steps,
        "train_seconds": round(trained, 1),
        "compared": compared,
        "max_abs_diff": worst,
        "bytes": record["bytes"],
        "onnx_ms_1": 1e3 * _median_seconds(onnx_one, args.repeats),
        "jax_ms_1": 1e3 * _median_seconds(jax_one, args.repeats),
        "onnx_ms_256": 1e3 * _median_seconds(onnx_batch, args.repeats),
        "jax_ms_256": 1e3 * _median_seconds(jax_batch, args.repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sequence-steps", type=int, default=100,
                        help="updates of the sequence models (a transformer update costs ~0.1 s "
                        "on one core here)")  # fmt: skip
    parser.add_argument("--observations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--algorithms", nargs="*", default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    names = args.algorithms or [n for n in registry.OFFLINE_ALGORITHMS if n not in SKIP]
    work = pathlib.Path(tempfile.mkdtemp(prefix="offrl-export-bench-"))
    rows = []
    try:
        for name in names:
            row = measure(name, work, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "command": "python benchmarks/export.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "algorithms"
        ),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "jax": jax.__version__,
        "rows": rows,
    }
    pathlib.Path(args.output).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
