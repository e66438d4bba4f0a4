"""offrl sweep on Ray Tune: a two-trial sweep on a local Ray head with two CPUs gives
the numbers `offrl bench` gives for the same cells, and a rerun reuses its trials."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray.tune")

from offrl.run.settings import RunError  # noqa: E402
from offrl.sweep import read_sweep, trials  # noqa: E402

SMALL = """
algorithms = ["bc"]
datasets = ["suite:pendulum-mixed"]
seeds = [0, 1]
steps = 20
eval_every = 10
eval_episodes = 2
checkpoint_every = 20
heldout_episodes = 2
output = "{output}"
[space.bc]
learning_rate = "cat:0.0003,0.001"
"""


@pytest.fixture
def ray_head():
    """A local Ray head with two CPUs, started once for the test (run_sweep uses a Ray
    that is already up and leaves it running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_trial_sweep_on_a_local_ray_head_matches_bench(ray_head, tmp_path, capsys):
    from offrl.bench import BenchConfig, run_bench
    from offrl.cli import main

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(SMALL.format(output=tmp_path / "sweep"))
    main(["sweep", str(sweep_file), "--cpus", "2"])
    out = capsys.readouterr().out
    assert "| suite:pendulum-mixed | bc learning_rate=0.001 |" in out
    result = json.loads((tmp_path / "sweep" / "results.json").read_text())
    rows = {row["algorithm"]: row for row in result["rows"]}
    assert set(rows) == {"bc learning_rate=0.0003", "bc learning_rate=0.001"}
    assert set(result["aggregates"]) == set(rows)
    # The same cell (BC's default learning rate is 3e-4) run by offrl bench.
    bench = run_bench(BenchConfig(algorithms=("bc",), datasets=("suite:pendulum-mixed",),
                                  seeds=(0, 1), steps=20, eval_every=10, eval_episodes=2,
                                  checkpoint_every=20, heldout_episodes=2,
                                  output=str(tmp_path / "bench")))  # fmt: skip
    [bench_row] = bench["rows"]
    for key in ("final_mean", "final_std", "best_mean", "best_std"):
        assert rows["bc learning_rate=0.0003"][key] == bench_row[key], key
    # Rerun: every trial is reused from its run directory, nothing retrains.
    summaries = [t["run_dir"] + "/summary.json" for t in trials(read_sweep(sweep_file))]
    stamps = [(tmp_path / s).stat().st_mtime_ns for s in summaries]
    main(["sweep", str(sweep_file), "--cpus", "2"])
    assert [(tmp_path / s).stat().st_mtime_ns for s in summaries] == stamps


def test_sweep_files_are_checked_before_ray_starts(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('algorithms = ["bc"]\ndatasets = ["suite:pendulum-mixed"]\nsteps = 10\n'
                   '[space.bc]\nlearning_rate = "log:0.0001:0.01"\n')  # fmt: skip
    with pytest.raises(RunError, match="a grid takes cat"):
        trials(read_sweep(bad))
    bad.write_text('algorithms = ["bc"]\ndatasets = ["d"]\nstep = 10\n')
    with pytest.raises(RunError, match="unknown key.*step"):
        read_sweep(bad)
    bad.write_text('algorithms = ["sac"]\ndatasets = ["d"]\n')
    with pytest.raises(RunError, match="'sac' is not an offline algorithm"):
        read_sweep(bad)
    bad.write_text(
        'algorithms = ["bc"]\ndatasets = ["d"]\nsearch = "random"\nsamples = 3\n'
        '[space.bc]\nlearning_rate = "log:0.0001:0.01"\nhidden_layers = "int:1:3"\n'
    )
    with pytest.raises(RunError, match="bc has no setting 'hidden_layers'"):
        trials(read_sweep(bad))
    bad.write_text(
        'algorithms = ["bc"]\ndatasets = ["d"]\nsearch = "random"\nsamples = 3\n'
        '[space.bc]\nlearning_rate = "log:0.0001:0.01"\n'
    )
    drawn = trials(read_sweep(bad))
    assert len(drawn) == 3 and drawn == trials(read_sweep(bad))  # the same draws again
    assert all(1e-4 <= t["settings"]["learning_rate"] <= 1e-2 for t in drawn)
