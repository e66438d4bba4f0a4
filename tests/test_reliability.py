"""Nothing lost, nothing run that the user did not ask for.

Each test pins a case found by trying offrl as a careful user and an attacker
would: signals in the middle of a run, damaged checkpoints, code named by a
dataset's metadata or a run's config, HTML in reports, unchecked arguments.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from offrl.algos import iql, sac, td3_bc
from offrl.cli import main
from offrl.run import checkpoint
from offrl.run.interrupt import RunInterrupted
from offrl.run.train import RunError, TrainConfig, load_run, train

DATASET = "suite:pendulum-mixed"
ALGO_CONFIG = td3_bc.Config(hidden_dims=(32, 32))
TRAIN = TrainConfig(
    heldout_episodes=10,
    steps=600,
    steps_per_call=100,
    checkpoint_every=200,
    eval_every=300,
    eval_episodes=1,
    seeds=(0, 1),
    progress=False,
)


def _leaves(states) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(states)]


def assert_bitwise_equal(a, b) -> None:
    left, right = _leaves(a), _leaves(b)
    assert len(left) == len(right)
    differ = [
        i for i, (x, y) in enumerate(zip(left, right, strict=True)) if not np.array_equal(x, y)
    ]
    assert not differ, f"{len(differ)} of {len(left)} leaves differ"


def _send_on_call(monkeypatch, owner, name: str, calls: int, signum=signal.SIGINT):
    """Replace ``owner.name`` by a wrapper that signals this process during its
    ``calls``-th call (before the original returns)."""
    original = getattr(owner, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return count


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted TD3+BC run (the states every interrupted run must reach)."""
    run = tmp_path_factory.mktemp("reference") / "td3_bc"
    train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN)
    return load_run(run)


def _checkpoint_labels_match(run_dir: pathlib.Path) -> None:
    for step in checkpoint.steps(run_dir / "checkpoints"):
        states = load_run(run_dir, step).states
        assert np.all(np.asarray(states.step) == step), (step, np.asarray(states.step))


# ------------------------------------------------------------------ interrupts
@pytest.mark.parametrize(
    "where, calls",
    [
        ("chunk", 1),  # during the first chunk (compiling)
        ("chunk", 3),  # during a chunk between checkpoints
        ("chunk", 4),  # during the chunk that ends at a checkpoint
        ("save", 1),  # while the first checkpoint is written
    ],
)
def test_ctrl_c_writes_the_labelled_state_and_resumes_bitwise(
    where, calls, reference, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    if where == "chunk":  # the signal arrives while the host waits for the device
        _send_on_call(monkeypatch, jax, "block_until_ready", calls)
    else:
        _send_on_call(monkeypatch, checkpoint, "save", calls)
    with pytest.raises(RunInterrupted, match="with a checkpoint"):
        train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN)
    monkeypatch.undo()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] and summary["steps"] < TRAIN.steps
    assert checkpoint.latest(run / "checkpoints") == summary["steps"]
    _checkpoint_labels_match(run)
    done = train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, resume=True)
    assert done["steps"] == TRAIN.steps and not done["interrupted"]
    assert_bitwise_equal(load_run(run).states, reference.states)


def test_sigterm_from_outside_stops_the_cli_with_a_checkpoint(reference, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "offrl.cli",
        "train",
        "td3_bc",
        "--dataset",
        DATASET,
        "--run-dir",
        str(run),
        "--hidden-dims",
        "32",
        "32",
        "--steps",
        str(TRAIN.steps),
        "--steps-per-call",
        "100",
        "--checkpoint-every",
        "200",
        "--eval-every",
        "300",
        "--eval-episodes",
        "1",
        "--seeds",
        "0,1",
        "--no-progress",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "stopped at step" in stderr
    _checkpoint_labels_match(run)
    train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, resume=True)
    assert_bitwise_equal(load_run(run).states, reference.states)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    original = checkpoint.save
    count = {"n": 0}

    def twice_on_second_save(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", twice_on_second_save)
    # The handlers in place before the run (SIG_IGN, not Python's default, when the
    # tests run in a background job) are the ones restored after it.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="second signal"):
        train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN)
    monkeypatch.undo()
    assert checkpoint.steps(run / "checkpoints") == [200]
    _checkpoint_labels_match(run)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.fixture(scope="module")
def pendulum_iql_small(tmp_path_factory):
    run = tmp_path_factory.mktemp("ft-base") / "iql"
    config = TrainConfig(
        heldout_episodes=10,
        steps=200,
        steps_per_call=100,
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=200,
        seeds=(0, 1),
        progress=False,
    )
    train("iql", DATASET, run, iql.Config(hidden_dims=(32, 32)), config)
    return run


def _finetune_config():
    from offrl.finetune import FinetuneConfig

    return FinetuneConfig(
        heldout_episodes=10,
        online_steps=300,
        eval_every=150,
        eval_episodes=1,
        early_evaluations=1,
        checkpoint_every=100,
        batch_size=32,
        progress=False,
    )


@pytest.fixture(scope="module")
def finetune_reference(pendulum_iql_small, tmp_path_factory):
    from offrl.finetune import finetune

    run = tmp_path_factory.mktemp("ft-ref") / "ft"
    summary = finetune("iql", run, _finetune_config(), from_run=pendulum_iql_small)
    return load_run(run), summary


@pytest.mark.parametrize("calls", [60, 170])  # mid-episode, after a checkpoint at 100
def test_finetune_interrupt_mid_episode_resumes_bitwise(
    calls, pendulum_iql_small, finetune_reference, tmp_path, monkeypatch
):
    from offrl.finetune import finetune, loop

    run = tmp_path / "ft"
    config = _finetune_config()
    _send_on_call(monkeypatch, loop, "_add", calls, signal.SIGTERM)
    with pytest.raises(RunInterrupted) as stopped:
        finetune("iql", run, config, from_run=pendulum_iql_small)
    assert stopped.value.signum == signal.SIGTERM
    monkeypatch.undo()
    stopped_at = json.loads((run / "summary.json").read_text())["online_steps"]
    assert stopped_at % 100 != 0 and checkpoint.latest(run / "checkpoints") == stopped_at
    done = finetune("iql", run, config, from_run=pendulum_iql_small, resume=True)
    reference, reference_summary = finetune_reference
    assert_bitwise_equal(load_run(run).states, reference.states)
    assert done["evaluations"] == reference_summary["evaluations"]
    assert done["final_per_seed"] == reference_summary["final_per_seed"]


def test_online_sac_interrupt_mid_episode_resumes_bitwise(tmp_path, monkeypatch):
    """Online training is the interaction loop without offline data: a signal stops
    it after the current step (mid-episode), and the resume replays that episode."""
    from offrl.finetune import loop
    from offrl.finetune.buffer import MixedReplay
    from offrl.run.settings import FinetuneConfig

    config = FinetuneConfig(
        env="Pendulum-v1",
        online_steps=400,
        seeds=(0,),
        random_steps=100,
        learning_starts=100,
        eval_every=200,
        early_evaluations=0,
        eval_episodes=1,
        heldout_episodes=2,
        checkpoint_every=1000,  # only the stop writes a checkpoint before the end
        progress=False,
        batch_size=16,
    )
    small = sac.Config(hidden_dims=(16, 16))
    reference = loop.finetune("sac", tmp_path / "ref", config, algo_config=small)
    _send_on_call(monkeypatch, MixedReplay, "sample", 50)  # during step 150
    with pytest.raises(RunInterrupted, match="step 150"):
        loop.finetune("sac", tmp_path / "run", config, algo_config=small)
    monkeypatch.undo()
    assert checkpoint.steps(tmp_path / "run" / "checkpoints") == [150]
    resumed = loop.finetune("sac", tmp_path / "run", config, algo_config=small, resume=True)
    assert_bitwise_equal(load_run(tmp_path / "run").states, load_run(tmp_path / "ref").states)
    assert resumed["evaluations"] == reference["evaluations"]
    assert resumed["heldout"] == reference["heldout"]


# ----------------------------------------------------------------- checkpoints
def _payload(value: float):
    return {"w": np.full((4, 3), value, np.float32), "b": np.arange(5, dtype=np.int32)}


def test_replacing_a_checkpoint_keeps_the_old_one_until_the_new_one_is_complete(
    tmp_path, monkeypatch
):
    checkpoint.save(tmp_path, 5, _payload(1.0))

    class Killed:
        def save(self, path, state):
            pathlib.Path(path).mkdir()
            (pathlib.Path(path) / "_METADATA").write_text("partial")
            raise RuntimeError("killed while writing")

        def wait_until_finished(self):
            pass

    monkeypatch.setattr(checkpoint, "_checkpointer", Killed)
    with pytest.raises(RuntimeError, match="killed"):
        checkpoint.save(tmp_path, 5, _payload(2.0))
    monkeypatch.undo()
    assert checkpoint.steps(tmp_path) == [5]
    np.testing.assert_array_equal(checkpoint.restore(tmp_path, 5, _payload(0.0))["w"], 1.0)
    checkpoint.save(tmp_path, 5, _payload(3.0))  # a later save still replaces it
    np.testing.assert_array_equal(checkpoint.restore(tmp_path, 5, _payload(0.0))["w"], 3.0)


def _damage(path: pathlib.Path, how: str) -> str:
    if how == "truncated":
        data = max(
            (p for p in path.rglob("*") if p.is_file() and "/d/" in p.as_posix()),
            key=lambda p: p.stat().st_size,
        )
        data.write_bytes(data.read_bytes()[:10])
        return data.name
    name = {"no-metadata": "_METADATA", "no-manifest": "manifest.ocdbt"}[how]
    (path / name).unlink()
    return name


@pytest.mark.parametrize("how", ["truncated", "no-metadata", "no-manifest"])
def test_a_damaged_checkpoint_is_named_moved_aside_and_skipped(how, tmp_path):
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, _payload(float(step)))
    name = _damage(tmp_path / "step_3", how)
    with pytest.raises(checkpoint.CheckpointError, match=f"step 3 is damaged: .*{name}"):
        checkpoint.restore(tmp_path, 3, _payload(0.0))
    warnings = []
    step, restored = checkpoint.restore_latest(tmp_path, _payload(0.0), warn=warnings.append)
    assert step == 2 and float(restored["w"][0, 0]) == 2.0
    assert (
        len(warnings) == 1 and "step 3" in warnings[0] and "falling back to step 2" in warnings[0]
    )
    assert checkpoint.steps(tmp_path) == [1, 2]
    assert (tmp_path / "damaged_step_3").is_dir()  # kept, not deleted


def test_checkpoints_without_a_manifest_still_load(tmp_path):
    checkpoint.save(tmp_path, 7, _payload(7.0))
    (tmp_path / "step_7" / checkpoint.MANIFEST).unlink()
    assert float(checkpoint.restore(tmp_path, 7, _payload(0.0))["w"][0, 0]) == 7.0


def test_an_intact_checkpoint_that_does_not_fit_is_not_moved_aside(tmp_path):
    for step in (1, 2):
        checkpoint.save(tmp_path, step, _payload(float(step)))
    other_parts = {"w": np.zeros((4, 3), np.float32), "step": np.int32(0)}
    wider = {"w": np.zeros((4, 5), np.float32), "b": np.zeros(5, np.int32)}
    for template in (other_parts, wider):  # Orbax refuses the first, reads the second
        with pytest.raises(checkpoint.CheckpointMismatch, match="step 2 .* intact but does not"):
            checkpoint.restore_latest(tmp_path, template, warn=pytest.fail)
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"\['w'\] has shape \(4, 3\)"):
        checkpoint.restore(tmp_path, 1, wider)
    assert checkpoint.steps(tmp_path) == [1, 2]
    assert not list(tmp_path.glob("damaged_*"))


def test_eval_with_a_configuration_that_does_not_fit_names_it_and_moves_nothing(
    pendulum_iql_small, tmp_path, capsys
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pendulum_iql_small, run)
    config_path = run / "config.json"
    saved = json.loads(config_path.read_text())
    saved["algorithm_config"]["hidden_dims"] = [48, 48]  # not what the checkpoints hold
    config_path.write_text(json.dumps(saved))
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(run), "--episodes", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "intact but does not fit" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_resume_and_eval_fall_back_from_a_damaged_latest_checkpoint(reference, tmp_path, capsys):
    run = tmp_path / "run"
    train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, stop_after=400)
    _damage(run / "checkpoints" / "step_400", "truncated")
    main(["eval", str(run), "--episodes", "1"])
    out = capsys.readouterr()
    assert (run / "eval_step_200.json").is_file() and "step 400 is damaged" in out.err
    assert "falling back to step 200" in out.err
    assert (run / "checkpoints" / "damaged_step_400").is_dir()
    done = train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, resume=True)
    assert done["resumed_at_step"] == 200 and done["steps"] == 600
    assert_bitwise_equal(load_run(run).states, reference.states)


def test_finetune_resume_falls_back_when_the_replay_file_is_damaged(
    pendulum_iql_small, finetune_reference, tmp_path, capsys
):
    from offrl.finetune import finetune

    run = tmp_path / "ft"
    config = _finetune_config()
    finetune("iql", run, config, from_run=pendulum_iql_small, stop_after=200)
    (run / "checkpoints" / "replay_200.npz").write_bytes(b"PK\x03\x04 not a zip")
    finetune("iql", run, config, from_run=pendulum_iql_small, resume=True)
    assert "replay_200.npz is unreadable" in capsys.readouterr().err
    assert (run / "checkpoints" / "damaged_step_200" / "side_replay_200.npz").is_file()
    assert_bitwise_equal(load_run(run).states, finetune_reference[0].states)


# ---------------------------------------------------------------- no code runs
def _crafted_minari(tmp_path: pathlib.Path, marker: pathlib.Path, keep_spaces: bool):
    from offrl.data import load_dataset
    from offrl.data.formats.minari import write_minari

    dataset = load_dataset(DATASET)
    path = write_minari(dataset, tmp_path / "shared-dataset")
    metadata_path = path / "data" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["env_spec"] = json.dumps(
        {
            "id": "Helpful-v0",
            "entry_point": "os:system",
            "kwargs": {"command": f"touch {marker}"},
            "reward_threshold": None,
            "nondeterministic": False,
            "max_episode_steps": None,
            "order_enforce": True,
            "disable_env_checker": True,
            "additional_wrappers": [],
            "vector_entry_point": None,
        }
    )
    if not keep_spaces:
        metadata.pop("observation_space")
        metadata.pop("action_space")
    metadata_path.write_text(json.dumps(metadata))
    return path


@pytest.mark.parametrize("keep_spaces", [False, True])
def test_a_dataset_whose_metadata_names_code_never_runs_it(keep_spaces, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _crafted_minari(tmp_path, marker, keep_spaces)
    code = None
    try:
        main(["data", "validate", str(path)])
    except SystemExit as error:
        code = error.code
    err = capsys.readouterr().err
    assert not marker.exists()
    if keep_spaces:  # the arrays are fine; the environment id is only a string
        assert code is None
    else:
        assert code == 2 and "Traceback" not in err and "entry_point" in err
    argv = ["train", "bc", "--dataset", str(path), "--run-dir", str(tmp_path / "run")]
    argv += ["--steps", "20", "--steps-per-call", "10", "--checkpoint-every", "20"]
    if keep_spaces:  # trains, without evaluations in the environment it names
        main([*argv, "--no-progress"])
        assert "training without evaluations" in capsys.readouterr().err
        assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 20
    else:
        with pytest.raises(SystemExit) as error:
            main([*argv, "--no-progress"])
        assert error.value.code == 2 and not (tmp_path / "run").exists()
        assert "Traceback" not in capsys.readouterr().err
    assert not marker.exists()


def test_a_module_env_id_in_a_run_config_is_not_imported(reference, tmp_path, capsys):
    (tmp_path / "evilmod.py").write_text(
        f"import pathlib\npathlib.Path({str(tmp_path / 'imported')!r}).touch()\n"
    )
    run = tmp_path / "run"
    shutil.copytree(reference.directory, run)
    config = json.loads((run / "config.json").read_text())
    config["env_id"] = "evilmod:Env-v0"
    (run / "config.json").write_text(json.dumps(config))
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(SystemExit) as error:
            main(["eval", str(run), "--episodes", "1"])
    finally:
        sys.path.remove(str(tmp_path))
    err = capsys.readouterr().err
    assert error.value.code == 2 and not (tmp_path / "imported").exists()
    assert "config.json" in err and "--env-id evilmod:Env-v0" in err


def test_make_env_refuses_module_ids_unless_allowed():
    from offrl.envs import EnvError, allow_env_id, check_env_id, make_env

    with pytest.raises(EnvError, match="would import the Python module 'os'"):
        make_env("os:system")
    with pytest.raises(EnvError, match="not a registered Gymnasium environment"):
        check_env_id("NoSuchTask-v0")
    allow_env_id("gymnasium.envs.classic_control:Pendulum-v1")
    make_env("gymnasium.envs.classic_control:Pendulum-v1").close()


# ---------------------------------------------------------------- reports
def test_report_escapes_what_it_did_not_write(reference, tmp_path):
    from offrl.evaluate.fqe import FQEConfig
    from offrl.evaluate.report import write_report

    run = tmp_path / "run"
    shutil.copytree(reference.directory, run)
    fqe = FQEConfig(updates=50, bootstrap=0, hidden_dims=(16, 16), batch_size=32)
    write_report([run], tmp_path / "first.html", fqe, steps=[600])
    script = "<script>alert(1)</script>"
    config = json.loads((run / "config.json").read_text())
    config["env_id"] = script
    (run / "config.json").write_text(json.dumps(config))
    cache = run / "offline" / "analysis.json"
    analysis = json.loads(cache.read_text())
    analysis["validation_source"] = script
    analysis["env_id"] = script
    analysis["seeds"] = [script, "<b>1</b>"]
    cache.write_text(json.dumps(analysis))
    page = write_report([run], tmp_path / "report.html", fqe, steps=[600]).read_text()
    assert "<script>" not in page and "<b>1</b>" not in page
    assert "&lt;script&gt;" in page


# ---------------------------------------------------------------- arguments
BAD_TRAIN_ARGS = [
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--steps", "-5"], "--steps must be a positive integer"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--batch-size", "-1"], "--batch-size must be a positive integer"),
    (["--eval-episodes", "0"], "--eval-episodes must be a positive integer"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be a positive integer"),
    (["--steps-per-call", "0"], "--steps-per-call must be a positive integer"),
    (["--seeds", "0,0"], "--seeds repeats 0"),
    (["--seeds"], "--seeds is empty"),
    (["--validation-fraction", "1.5"], "--validation-fraction must be in"),
    (["--reward-scaling", "huge"], "--reward-scaling must be one of"),
    (["--stop-after", "0"], "--stop-after must be a positive integer"),
]


@pytest.mark.parametrize("extra, message", BAD_TRAIN_ARGS)
def test_bad_train_arguments_exit_2_before_anything_is_written(extra, message, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as error:
        main(["train", "bc", "--dataset", DATASET, "--run-dir", str(run), *extra])
    err = capsys.readouterr().err
    assert error.value.code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not run.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "bc", "--dataset", "suite:no-such"], "unknown suite dataset 'suite:no-such'"),
        (["data", "validate", "suite:no-such"], "unknown suite dataset 'suite:no-such'"),
        (["suite", "card", "../x"], "unknown suite dataset '../x'"),
        (["eval", "runs/none", "--episodes", "0"], "--episodes must be a positive integer"),
        (["bench", "--seeds", "1,1"], "--seeds repeats 1"),
        (["bench", "--algorithms", "sac"], "'sac' is not an offline algorithm"),
        (["online", "sac", "--env", "Pendulum-v1", "--online-steps", "0"], "--online-steps must"),
        (["online", "sac", "--env", "NoSuchTask-v0"], "not a registered Gymnasium"),
        (["online", "sac"], "--env is required"),
        (["finetune", "rlpd", "--dataset", DATASET, "--online-steps", "0"], "--online-steps"),
        (["finetune", "rlpd", "--dataset", DATASET, "--seeds", "2,2"], "--seeds repeats 2"),
        (["finetune", "rlpd", "--dataset", DATASET, "--utd", "0"], "--utd must be"),
        (["train", "no_such_algo", "--dataset", DATASET], "unknown algorithm 'no_such_algo'"),
        (["select", "runs/none", "--fqe-updates", "0"], "--fqe-updates must be a positive"),
        (["report", "runs/none", "--bootstrap", "-1"], "--bootstrap must be 0"),
        (["quickstart", "--steps", "0", "--output", "runs/q"], "--steps must be a positive"),
        (["quickstart", "--dataset", "nope", "--output", "runs/q"], "unknown suite dataset"),
    ],
)
def test_bad_arguments_of_other_commands(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as error:
        main(argv)
    err = capsys.readouterr().err
    assert error.value.code == 2, err
    assert message in err and "Traceback" not in err
    assert not err.strip().startswith("error: '"), "an error printed in quotes"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(train_config=[1, 2]), "'train_config' is [1, 2], not a dict"),
        (lambda c: c["train_config"].update(seeds="01"), "TrainConfig.seeds is '01'"),
        (lambda c: c["algorithm_config"].update(hidden_dims=5), "hidden_dims is 5"),
        (lambda c: c.pop("observation_dim"), "'observation_dim' is missing"),
        (lambda c: c.update(seeds=[0, 0]), "--seeds repeats 0"),
        (lambda c: c.update(kind="other"), "'kind' is 'other', not one of"),
    ],
)
def test_a_config_of_the_wrong_shape_names_the_file(edit, message, reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference.directory, run)
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    for argv in (
        ["eval", str(run), "--episodes", "1"],
        ["train", "td3_bc", "--dataset", DATASET, "--run-dir", str(run), "--resume"],
    ):
        with pytest.raises(SystemExit) as error:
            main(argv)
        err = capsys.readouterr().err
        assert error.value.code == 2
        assert "config.json" in err and message in err and "Traceback" not in err


def test_invalid_json_config_names_the_file(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference.directory, run)
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunError, match=r"config\.json is not valid JSON"):
        load_run(run)


# ------------------------------------------------------------ malformed data
def _d4rl(path, **arrays):
    import h5py

    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f[name] = value
    return path


def _arrays(n=20, obs_dim=3, act_dim=2):
    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[n // 2 - 1] = timeouts[-1] = True
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
    }


def test_three_malformed_hdf5_files_are_refused_with_the_field(tmp_path):
    from offrl.data import DatasetError, load_dataset

    empty = {k: v[:0] for k, v in _arrays().items()}
    with pytest.raises(DatasetError, match="field 'rewards'.*no transitions"):
        load_dataset(_d4rl(tmp_path / "empty.hdf5", **empty))
    wide = _arrays()
    wide["rewards"] = np.ones((20, 2), np.float32)
    with pytest.raises(DatasetError, match=r"field 'rewards'.*shape \(20, 2\)"):
        load_dataset(_d4rl(tmp_path / "wide.hdf5", **wide))
    fuzzy = _arrays()
    fuzzy["terminals"] = np.linspace(0.0, 0.9, 20).astype(np.float32)
    with pytest.raises(DatasetError, match="field 'terminals'.*flags must be 0 or 1"):
        load_dataset(_d4rl(tmp_path / "fuzzy.hdf5", **fuzzy))
    ok = _arrays()
    ok["terminals"] = ok["terminals"].astype(np.float32)  # 0.0/1.0 floats are fine
    assert load_dataset(_d4rl(tmp_path / "ok.hdf5", **ok)).num_episodes == 2


# ------------------------------------------------------------------- smaller
def test_a_cut_metrics_line_is_dropped_with_a_warning_and_wall_time_counts_it(tmp_path, capsys):
    run = tmp_path / "run"
    first = train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, stop_after=200)
    metrics = run / "metrics.jsonl"
    # A killed process logged past its checkpoint, and its last write was cut.
    with metrics.open("a") as f:
        f.write(json.dumps({"step": 300, "time/wall_seconds": 1000.0}) + "\n")
        f.write('{"step": 400, "train/critic')
    done = train("td3_bc", DATASET, run, ALGO_CONFIG, TRAIN, resume=True)
    err = capsys.readouterr().err
    assert "dropped an unreadable record" in err and "metrics.jsonl, line" in err
    assert first["wall_seconds"] < 1000.0
    assert done["wall_seconds"] > 1000.0
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 600


def test_a_kill_between_the_two_renames_of_a_replace_is_recovered(tmp_path):
    checkpoint.save(tmp_path, 5, _payload(5.0))
    # save() renames the old step_5 aside, then the new one in: killed in between.
    os.replace(tmp_path / "step_5", tmp_path / ".step_5.replaced-4242")
    assert checkpoint.steps(tmp_path) == [5]
    assert float(checkpoint.restore(tmp_path, 5, _payload(0.0))["w"][0, 0]) == 5.0


def test_a_replay_file_of_another_shape_is_a_damaged_checkpoint(tmp_path):
    from offrl.finetune import loop
    from offrl.finetune.buffer import MixedReplay

    written = MixedReplay(None, 2, 10, 4, 2, 0.0)
    written.add(
        0,
        observations=np.ones(4),
        actions=np.zeros(2),
        rewards=1.0,
        next_observations=np.ones(4),
        terminations=0.0,
        truncations=0.0,
    )
    loop._save(tmp_path, 3, {"w": np.zeros(1)}, written, np.random.default_rng(0), {"step": 3}, {})
    path = tmp_path / "replay_3.npz"
    read = loop._read_replay(path, 3, MixedReplay(None, 2, 10, 4, 2, 0.0))
    assert read["size"].tolist() == [1, 0]
    with pytest.raises(checkpoint.CheckpointError, match=r"step 3 is damaged: .*replay_3"):
        loop._read_replay(path, 3, MixedReplay(None, 2, 10, 3, 2, 0.0))


def test_an_episode_that_does_not_replay_is_cut_with_a_warning(
    pendulum_iql_small, tmp_path, capsys
):
    from offrl.finetune import finetune

    run = tmp_path / "ft"
    config = _finetune_config()
    finetune("iql", run, config, from_run=pendulum_iql_small, stop_after=150)
    path = run / "checkpoints" / "replay_150.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["online_observations"][0, 50] += 1.0  # the recorded episode no longer replays
    np.savez(path, **arrays)
    done = finetune("iql", run, config, from_run=pendulum_iql_small, resume=True)
    err = capsys.readouterr().err
    assert "seed 0: the episode in flight at the checkpoint could not be replayed" in err
    assert "seed 1" not in err  # the other seed's episode replays
    assert done["online_steps"] == 300 and not done["interrupted"]
