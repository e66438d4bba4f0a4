"""ONNX export and the standalone runtime: every algorithm's exported policy acts as
JAX does, the filter goes into the graph, and offrl.deploy runs without JAX."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from offrl.core import registry
from offrl.core.trainer import example_batch
from offrl.data.preprocess import Preprocessor
from offrl.export import _check_inputs, _row_specs, policy_function, to_onnx_model
from offrl.run.settings import RunError

pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")

OBS, ACT = 5, 2
#: Smaller sequence models and critics than the defaults: parity does not depend on
#: width, and their initialization dominated the test's time.
SMALL = {
    "dt": dict(context_length=4, embedding_dim=32, num_layers=1),
    "mo_dt": dict(context_length=4, embedding_dim=32, num_layers=1),
    "meta_dt": dict(context_length=4, embedding_dim=32, num_layers=1, context_horizon=2),
    "bc_rnn": dict(context_length=4, hidden_dim=64),
    "iql_history": dict(context_length=4, encoder_dim=32),
    "uni_o4": dict(value_hidden_dims=(32,), critic_hidden_dims=(32,)),
}


def _preprocessor():
    rng = np.random.default_rng(3)
    return Preprocessor(
        observation_mean=rng.normal(size=OBS).astype(np.float32),
        observation_std=rng.uniform(0.5, 2.0, OBS).astype(np.float32),
        action_low=np.array([-2.0, -0.5], np.float32),
        action_high=np.array([2.0, 1.5], np.float32),
        reward_scale=np.float32(1.0),
        reward_shift=np.float32(0.0),
    )


def _session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options)


def test_every_algorithm_exports_with_jax_actions_within_1e_5():
    """Each registered algorithm's deterministic policy, preprocessing inside, against
    the jitted JAX policy on 1000 observations (windows for the sequence policies)."""
    pre = _preprocessor()
    checked = []
    for name in registry.names():
        algo = registry.get(name)
        config = algo.Config(**SMALL.get(name, {}))
        # jitted: compiling init is faster than running it op by op (2-5 s each here)
        batch = example_batch(OBS, ACT)
        state = jax.jit(lambda k, a=algo, c=config, b=batch: a.init(c, b, k))(jax.random.PRNGKey(0))
        # as a restored checkpoint holds it: NumPy leaves (Uni-O4's traced index broke on
        # them before the export converted them)
        state = jax.tree_util.tree_map(np.asarray, state)
        length, specs = _row_specs(algo, config, OBS, ACT)
        names = [f"x{i}" for i in range(len(specs))]
        row = policy_function(algo, config, state, pre, window=length is not None)
        if name == "dmamba":  # its associative scan has no ONNX equivalent
            with pytest.raises(RunError, match="cannot be exported"):
                to_onnx_model(row, specs, names, name, 17)
            continue
        model, batched = to_onnx_model(row, specs, names, name, 17)
        inputs = _check_inputs(specs, pre, 1000, np.random.default_rng(0), length)
        onnx_actions = _session(model).run(None, dict(zip(names, inputs, strict=True)))[0]
        jax_actions = np.asarray(jax.jit(batched)(*inputs))  # JAX running the same policy
        assert onnx_actions.shape == (1000, ACT), name
        # V-OCBF's act is its actor then the CBF-QP projection, whose division by the
        # constraint's slope amplifies float rounding (measured 1.4e-5): 1e-4 for it.
        atol = 1e-4 if name == "vocbf" else 1e-5
        if name == "safe_set":
            # The gate takes the first candidate with Qc >= tau: where a candidate's Qc is
            # within float rounding of tau the two runtimes may choose differently (a
            # different action, not a small error). Measured: 1 row of 1000.
            close = np.abs(onnx_actions - jax_actions).max(axis=1) <= atol
            assert close.mean() >= 0.99, (name, close.mean())
            onnx_actions, jax_actions = onnx_actions[close], jax_actions[close]
        np.testing.assert_allclose(onnx_actions, jax_actions, atol=atol, rtol=0, err_msg=name)
        # a batch of one and a batch of 7 (the batch is dynamic)
        full = _session(model).run(None, dict(zip(names, inputs, strict=True)))[0]
        for n in (1, 7):
            part = [x[:n] for x in inputs]
            out = _session(model).run(None, dict(zip(names, part, strict=True)))[0]
            np.testing.assert_allclose(out, full[:n], atol=1e-6, err_msg=name)
        checked.append(name)
    assert len(checked) == len(registry.names()) - 1


@pytest.fixture(scope="module")
def td3_bc_run(tmp_path_factory):
    """One tiny TD3+BC run (2 seeds, 32x32) the CLI and runtime tests share."""
    return _tiny_run(tmp_path_factory.mktemp("export"), extra=("--hidden-dims", "32", "32"))


def _tiny_run(tmp_path, algorithm="td3_bc", extra=()):
    from offrl.cli import main

    run = tmp_path / algorithm
    main(["train", algorithm, "--dataset", "suite:pendulum-mixed", "--run-dir", str(run),
          "--steps", "40", "--eval-every", "0", "--checkpoint-every", "40",
          "--heldout-episodes", "0", "--seeds", "0", "1", "--no-progress", *extra])  # fmt: skip
    return run


def test_cli_export_writes_one_file_per_seed_with_metadata(td3_bc_run, tmp_path, capsys):
    from offrl.cli import main
    from offrl.deploy import load_policy
    from offrl.evaluate.policy import load_policy as load_jax_policy

    run = td3_bc_run
    capsys.readouterr()
    main(["export", str(run)])
    out = capsys.readouterr().out
    files = sorted((run / "export").glob("*.onnx"))
    assert [f.name for f in files] == ["policy_seed0.onnx", "policy_seed1.onnx"]
    assert "largest difference from JAX" in out
    policy = load_policy(files[1])
    meta = policy.metadata
    assert meta["algorithm"] == "td3_bc" and meta["seed"] == 1 and meta["step"] == 40
    assert meta["env_id"] == "Pendulum-v1" and meta["observation_dim"] == 3
    assert meta["action_low"] == [-2.0] and meta["check_max_abs_diff"] < 1e-5
    # The file acts as the run does, seed by seed, for one observation and a batch.
    jax_policy, _ = load_jax_policy(run)
    observations = np.random.default_rng(0).normal(size=(2, 64, 3)).astype(np.float32)
    expected = np.asarray(jax_policy(observations, jax.random.PRNGKey(0)))
    np.testing.assert_allclose(policy(observations[1]), expected[1], atol=1e-5)
    np.testing.assert_allclose(policy(observations[1, 0]), expected[1, 0], atol=1e-5)
    with pytest.raises(ValueError, match=r"takes \[3\] or \[N, 3\]"):
        policy(np.zeros(4))
    # Nothing is overwritten unless asked (checked before any file is written); a seed
    # the run lacks is named.
    files[0].unlink()  # seed 0 would be written first, then seed 1's refused
    with pytest.raises(SystemExit):
        main(["export", str(run)])
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert not files[0].exists()
    main(["export", str(run), "--overwrite"])
    with pytest.raises(SystemExit):
        main(["export", str(run), "--seed", "7"])
    assert "has seeds [0, 1]" in capsys.readouterr().err
    main(["export", str(run), "--seed", "0", "--output", str(tmp_path / "one.onnx")])
    assert (tmp_path / "one.onnx").exists()


def test_deploy_runs_an_exported_policy_without_jax(td3_bc_run, tmp_path):
    """The example's Gymnasium loop in a process where JAX cannot be imported, and the
    same returns as offrl's own evaluation of the checkpoint."""
    from offrl.cli import main
    from offrl.evaluate.policy import evaluate_run

    run = td3_bc_run
    exported = tmp_path / "policy_seed0.onnx"
    main(["export", str(run), "--seed", "0", "--output", str(exported)])
    blocked = (
        "import sys, runpy; sys.modules['jax'] = None; sys.modules['flax'] = None; "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "examples/deploy_gym.py", str(exported),
         "--episodes", "2", "--seed", "500"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    returns = [float(line.split("return ")[1]) for line in result.stdout.splitlines()[:2]]
    record = evaluate_run(run, episodes=2, seed=500)
    np.testing.assert_allclose(returns, np.asarray(record["returns"])[0], atol=0.5)
    assert "import jax" not in (
        subprocess.run([sys.executable, "-c", "import offrl.deploy, sys; "
                        "print('import jax' if 'jax' in sys.modules else 'ok')"],
                       capture_output=True, text=True).stdout
    )  # fmt: skip


def test_sequence_policy_export_keeps_its_window(tmp_path):
    """A Decision Transformer exported and stepped by offrl.deploy's window gives the
    actions of offrl's HistoryPolicy on the same episode."""
    from offrl.cli import main
    from offrl.deploy import load_policy
    from offrl.evaluate.policy import load_policy as load_jax_policy

    run = _tiny_run(tmp_path, "dt", ("--context-length", "4", "--embedding-dim", "16",
                                     "--num-layers", "1", "--num-heads", "1"))  # fmt: skip
    main(["export", str(run), "--seed", "1"])
    policy = load_policy(run / "export" / "policy_seed1.onnx")
    assert policy.window_length == 4 and policy.inputs[3] == "timesteps"
    jax_policy, _ = load_jax_policy(run)
    rng = np.random.default_rng(1)
    jax_policy.reset_history()
    policy.reset()
    for _ in range(7):  # past the context length: the window slides
        obs = rng.normal(size=(2, 3, 3)).astype(np.float32)
        expected = np.asarray(jax_policy(obs, jax.random.PRNGKey(0)))
        actions = policy(obs[1])
        np.testing.assert_allclose(actions, expected[1], atol=1e-5)
        rewards = rng.normal(size=(2, 3)).astype(np.float32)
        jax_policy.record(expected, rewards)
        policy.record(actions, rewards[1])


def test_filtered_export_matches_the_shield(tmp_path, monkeypatch):
    """A policy with a barrier's CBF and Qc filters inside the graph acts as
    `offrl eval --filter` does."""
    from offrl.algos import vocbf
    from offrl.deploy import load_policy
    from offrl.evaluate.policy import load_policy as load_jax_policy
    from offrl.export import ExportConfig, export_run
    from offrl.run.train import TrainConfig, train
    from offrl.safety.shield import load_barrier, shielded_policy
    from offrl.suites import safety

    monkeypatch.setitem(safety.RECIPES, "pointrobot-export", {"task": "pointrobot", "parts": [
        dict(behavior="seeker", num_episodes=4, seed=1, noise_std=0.3),
        dict(behavior="random", num_episodes=2, seed=2, first_reset_seed=100)]})  # fmt: skip
    small = TrainConfig(steps=60, eval_every=0, checkpoint_every=60, heldout_episodes=0,
                        seeds=(0,), progress=False)  # fmt: skip
    train("vocbf", "suite:pointrobot-export", tmp_path / "barrier",
          vocbf.Config(hidden_dims=(16,), bc_hidden_dims=(16,), dynamics_hidden_dims=(8,)),
          small)  # fmt: skip
    train("bc", "suite:pointrobot-export", tmp_path / "bc",
          registry.get("bc").Config(hidden_dims=(16,)), small)  # fmt: skip
    nominal, _ = load_jax_policy(tmp_path / "bc")
    barrier = load_barrier(tmp_path / "barrier")
    rng = np.random.default_rng(0)
    dim = barrier.observation_dim
    observations = rng.normal(0, 2, size=(1, 256, dim)).astype(np.float32)
    for mode in ("cbf", "qc"):
        [record] = export_run(ExportConfig(str(tmp_path / "bc"), filter=str(tmp_path / "barrier"),
                                           filter_mode=mode))  # fmt: skip
        policy = load_policy(record["path"])
        assert policy.metadata["filter"]["mode"] == mode
        shielded, _ = shielded_policy(nominal, 1, barrier, mode)
        expected = np.asarray(shielded(observations, jax.random.PRNGKey(0)))[0]
        np.testing.assert_allclose(policy(observations[0]), expected, atol=1e-4)
        assert json.loads(json.dumps(policy.metadata))["filter"]["run_dir"] == "barrier"
    assert dim == policy.observation_dim


def test_window_is_left_aligned_then_slides():
    """offrl.deploy.Window (offrl's own history too): the first K steps fill positions
    0..K-1, then every step shifts the window by one; returns-to-go fall by the scaled
    rewards."""
    from offrl.deploy import Window

    window = Window(3, action_dim=1, target=10.0, scale=2.0, shift=0.0)
    for t in range(5):
        w = window.observe(np.full((2, 1), float(t)))
        window.record(np.full((2, 1), -float(t)), np.ones(2))
        if t == 1:
            np.testing.assert_array_equal(w["observations"][0, :, 0], [0, 1, 0])
            np.testing.assert_array_equal(w["mask"][0], [1, 1, 0])
            np.testing.assert_array_equal(w["returns_to_go"][0], [10, 8, 0])
    w = window.observe(np.full((2, 1), 5.0))
    np.testing.assert_array_equal(w["observations"][1, :, 0], [3, 4, 5])
    np.testing.assert_array_equal(w["actions"][1, :, 0], [-3, -4, 0])
    np.testing.assert_array_equal(w["timesteps"][1], [3, 4, 5])
    np.testing.assert_array_equal(w["returns_to_go"][1], [4, 2, 0])
    window.reset()
    assert window.observe(np.zeros((1, 1)))["mask"].tolist() == [[1, 0, 0]]


def test_filtered_window_policy_filters_at_the_windows_last_real_step():
    """A sequence policy behind a filter: the filter sees the observation of the
    window's last real step (not the first, not a padded one)."""
    from offrl.algos import vocbf
    from offrl.safety.shield import filter_in_env

    pre = _preprocessor()
    batch = example_batch(OBS, ACT)
    dt_algo = registry.get("dt")
    dt_config = dt_algo.Config(**SMALL["dt"])
    dt_state = jax.jit(lambda k: dt_algo.init(dt_config, batch, k))(jax.random.PRNGKey(0))
    b_config = vocbf.Config(hidden_dims=(16,), bc_hidden_dims=(16,), dynamics_hidden_dims=(8,))
    b_state = jax.jit(lambda k: vocbf.init(b_config, batch, k))(jax.random.PRNGKey(1))
    barrier = (pre, b_state, b_config, "qc", 0.5)
    length, specs = _row_specs(dt_algo, dt_config, OBS, ACT)
    row = policy_function(dt_algo, dt_config, dt_state, pre, barrier, window=True)
    unfiltered = policy_function(dt_algo, dt_config, dt_state, pre, window=True)
    inputs = _check_inputs(specs, pre, 8, np.random.default_rng(2), length)
    for i in range(8):
        window = [x[i] for x in inputs]
        last = int(window[-1].sum()) - 1
        nominal = unfiltered(*window)[None]
        expected, _ = filter_in_env(pre, b_state, b_config, window[0][last][None], nominal,
                                    "qc", 0.5)  # fmt: skip
        np.testing.assert_allclose(row(*window), expected[0], atol=1e-6)
