"""The full-protocol accelerator script at a CPU size, and the padding it stacks by."""

import importlib.util
import json
import pathlib

import jax
import numpy as np
from conftest import make_episodes

from offrl.data import DatasetInfo, from_episodes
from offrl.data.dataset import num_rows, sample, stack_padded
from offrl.data.windows import sample_windows, with_returns_to_go

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_protocol.py"


def test_padded_datasets_stack_and_sample_their_real_rows_only():
    small = from_episodes(make_episodes(2, 5), DatasetInfo(name="a"))  # 10 rows
    large = from_episodes(make_episodes(5, 6, seed=1), DatasetInfo(name="b"))  # 30 rows
    stacked = stack_padded([with_returns_to_go(small), with_returns_to_go(large)])
    assert stacked.observations.shape == (2, 30, 3)
    np.testing.assert_array_equal(jax.vmap(num_rows)(stacked), [10, 30])
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    batches = jax.vmap(lambda d, k: sample(d, k, 4000))(stacked, keys)
    real = np.asarray(small.observations)
    drawn = np.asarray(batches["observations"][0])
    # every draw is a real row of the small dataset, and every row is drawn
    matches = (drawn[:, None, :] == real[None, :, :]).all(-1)
    assert matches.any(1).all() and matches.any(0).all()
    windows = jax.vmap(lambda d, k: sample_windows(d, k, 500, 3))(stacked, keys)
    assert np.all(np.asarray(windows["timesteps"][0]) <= 4)  # episodes of 5 steps
    assert np.all(np.asarray(windows["mask"][0, :, 0]) == 1.0)


def test_gpu_protocol_runs_at_a_tiny_size(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_protocol", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--tiny", "--output", str(tmp_path)])
    rows = result["rows"]
    assert [r["dataset"] for r in rows] == [
        "suite:pendulum-expert", "suite:pendulum-mixed", "suite:pendulum-random",
    ]  # fmt: skip
    for row in rows:
        assert row["seeds"] == 2 and row["steps"] == 200
        assert np.isfinite(row["final_mean"]) and np.isfinite(row["best_mean"])
    device = json.loads((tmp_path / "device.json").read_text())
    assert device["platform"] == "cpu" and device["device_kind"]
    assert (tmp_path / "results.md").exists() and (tmp_path / "results.csv").exists()
