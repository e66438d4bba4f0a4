"""The offrl command, run in-process."""

import json

import h5py
import numpy as np
import pytest

from offrl.cli import main


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())  # undo rich line wrapping


def test_top_level_help(capsys):
    code, out = run(["--help"], capsys)
    assert code == 0 and "offrl train ALGO" in out and "quickstart" in out


def test_train_help_lists_algorithm_and_train_options(capsys):
    code, out = run(["train", "td3_bc", "--help"], capsys)
    assert code == 0
    assert "--alpha" in out and "--steps" in out and "--seeds" in out
    assert "Trade-off between Q maximisation" in out  # field docstrings become --help


def test_train_eval_and_resume_through_the_cli(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "bc",
        "--dataset",
        "suite:pendulum-expert",
        "--run-dir",
        str(run_dir),
        "--steps",
        "200",
        "--steps-per-call",
        "100",
        "--eval-every",
        "200",
        "--checkpoint-every",
        "100",
        "--eval-episodes",
        "2",
        "--seeds",
        "0,1",
        "--hidden-dims",
        "16",
        "16",
        "--no-progress",
    ]
    code, out = run(argv + ["--stop-after", "100"], capsys)
    assert code == 0, out
    code, out = run(argv + ["--resume"], capsys)
    assert code == 0, out
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train_config"]["seeds"] == [0, 1] and saved["seeds"] == [0, 1]
    assert saved["kind"] == "offline"
    assert saved["algorithm_config"]["hidden_dims"] == [16, 16]
    code, out = run(["eval", str(run_dir), "--episodes", "2"], capsys)
    assert code == 0, out
    assert "normalized score" in out
    result = json.loads((run_dir / "eval_step_200.json").read_text())
    assert len(result["return_per_seed"]) == 2


def test_train_refuses_existing_run_dir(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    code, out = run(
        [
            "train",
            "bc",
            "--dataset",
            "suite:pendulum-expert",
            "--run-dir",
            str(tmp_path / "run"),
            "--steps",
            "100",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 2 and "already exists" in out
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_unknown_algorithm(capsys):
    code, out = run(["train", "dqn", "--dataset", "x"], capsys)
    assert code == 2 and "unknown algorithm" in out


def test_data_validate_reports_the_field(tmp_path, capsys):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((4, 2), np.float32)
        f["actions"] = np.zeros((4, 1), np.float32)
        f["rewards"] = np.array([0, np.nan, 0, 0], np.float32)
        f["terminals"] = np.zeros(4, bool)
        f["timeouts"] = np.array([0, 0, 0, 1], bool)
        f["next_observations"] = np.zeros((4, 2), np.float32)
    code, out = run(["data", "validate", str(path)], capsys)
    assert code == 2
    assert "field 'rewards'" in out and "row 1" in out


def test_data_inspect_and_convert(tmp_path, capsys):
    plot = tmp_path / "summary.png"
    code, out = run(["data", "inspect", "suite:pendulum-expert", "--plot", str(plot)], capsys)
    assert code == 0 and "20000" in out and "episode return" in out
    import matplotlib.image

    assert matplotlib.image.imread(plot).shape[0] > 100  # a real, decodable figure
    target = tmp_path / "converted"
    code, out = run(
        ["data", "convert", "suite:pendulum-expert", str(target), "--format", "arrow"], capsys
    )
    assert code == 0, out
    code, out = run(["data", "validate", str(target)], capsys)
    assert code == 0 and "valid" in out


def test_suite_list(capsys):
    code, out = run(["suite", "list"], capsys)
    assert code == 0 and "suite:pendulum-mixed" in out


@pytest.mark.parametrize("argv", [["eval"], ["data"], ["online"], ["bogus"]])
def test_usage_errors_exit_cleanly(argv, capsys):
    code, _ = run(argv, capsys)
    assert code == 2


HELP_COMMANDS = [
    ["--help"],
    ["train", "--help"],
    *[["train", name, "--help"] for name in ("bc", "td3_bc", "iql", "cql", "calql", "td3_bc_lag")],
    ["finetune", "--help"],
    *[["finetune", name, "--help"] for name in ("iql", "rlpd", "resfit", "h2o")],
    ["online", "--help"],
    ["online", "sac", "--help"],
    ["safety", "--help"],
    ["safety", "fit", "--help"],
    ["data", "--help"],
    *[
        ["data", verb, "--help"]
        for verb in ("inspect", "validate", "convert", "quality", "curate", "weigh", "retrieve")
    ],
    ["label", "--help"],
    ["label", "preferences", "--help"],
    ["label", "rewards", "--help"],
    ["label", "actions", "--help"],
    ["suite", "--help"],
    ["suite", "build", "--help"],
    ["eval", "--help"],
    ["select", "--help"],
    ["report", "--help"],
    ["bench", "--help"],
    ["quickstart", "--help"],
]


@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=" ".join)
def test_every_help_exits_0_with_plain_text(argv, capsys):
    code, out = run(argv, capsys)
    assert code == 0, out
    assert "usage" in out.lower() or "offrl train ALGO" in out
    description = out.split("-h, --help")[0]  # the command's text, before its options
    assert "``" not in description and ":func:" not in description


def test_algorithm_help_is_not_cut_at_a_role(capsys):
    code, out = run(["train", "iql", "--help"], capsys)
    # The docstring continues past its cross-reference to the end of the paragraph.
    assert code == 0 and "resolve_reward_scaling" in out and "initialised at 0" in out


def test_resume_takes_the_saved_configuration(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "bc", "--dataset", "suite:pendulum-expert", "--run-dir", str(run_dir)]
    argv += ["--steps", "200", "--steps-per-call", "100", "--checkpoint-every", "100"]
    argv += ["--eval-every", "200", "--eval-episodes", "1", "--hidden-dims", "16", "16"]
    code, out = run(argv + ["--stop-after", "100", "--no-progress"], capsys)
    assert code == 0, out
    # Contradicting a saved option is refused; leaving options out keeps them.
    code, out = run(
        ["train", "bc", "--run-dir", str(run_dir), "--resume", "--steps", "300"], capsys
    )
    assert code == 2 and "differs" in out and "steps" in out
    code, out = run(["train", "iql", "--run-dir", str(run_dir), "--resume"], capsys)
    assert code == 2 and "holds a bc run" in out
    code, out = run(["train", "bc", "--run-dir", str(run_dir), "--resume"], capsys)
    assert code == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 200 and summary["resumed_at_step"] == 100
    # Without a terminal, progress comes as plain lines on stderr.
    assert "[bc (1 seed)] 200/200" in out


def test_data_convert_to_a_relative_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run(["data", "convert", "suite:pendulum-expert", "converted"], capsys)
    assert code == 0, out
    code, out = run(["data", "validate", "converted"], capsys)
    assert code == 0 and "valid" in out


@pytest.mark.parametrize("command", ["select", "report"])
def test_select_and_report_need_a_run_directory(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run([command], capsys)
    assert code == 2 and "at least one run directory" in out
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "rlpd", "--dataset", "x"], "offrl finetune rlpd"),
        (["train", "sac", "--dataset", "x"], "offrl online sac"),
        (["train", "nope"], "offrl train runs bc, td3_bc"),
        (["finetune", "bc"], "offrl finetune runs iql"),
    ],
)
def test_algorithm_names_point_to_the_right_command(argv, message, capsys):
    code, out = run(argv, capsys)
    assert code == 2 and message in out


def test_one_error_path_and_debug(tmp_path, capsys, monkeypatch):
    """Bad input is one line on stderr and status 2 from every command; --debug (or
    OFFRL_DEBUG=1) lets the exception through with its traceback instead."""
    from offrl.run.settings import RunError

    missing = str(tmp_path / "nowhere")
    for argv in (["eval", missing], ["select", missing], ["report", missing]):
        with pytest.raises(SystemExit) as error:
            main(argv)
        err = capsys.readouterr().err
        assert error.value.code == 2 and "Traceback" not in err
        assert err.count("\n") <= 2 and "not a run directory" in err, err
    with pytest.raises(RunError, match="not a run directory"):
        main(["eval", missing, "--debug"])
    monkeypatch.setenv("OFFRL_DEBUG", "1")
    with pytest.raises(RunError):
        main(["select", missing])


def test_train_preset_takes_the_released_per_dataset_settings(tmp_path, capsys):
    from offrl.algos import mopo, rebrac
    from offrl.cli.train import _preset_defaults

    config = _preset_defaults("rebrac", rebrac, "suite:hopper-medium-replay")
    assert (config.actor_bc_coef, config.critic_bc_coef) == (0.05, 0.5)
    config = _preset_defaults("mopo", mopo, "suite:hopper-medium")
    assert (config.rollout_length, config.penalty_coef) == (5, 5.0)
    code, out = run(["train", "bc", "--dataset", "suite:pendulum-mixed", "--preset"], capsys)
    assert code == 2 and "bc has no per-dataset presets; --preset works with" in out
    assert "mopo" in out and "rebrac" in out
    argv = ["train", "mopo", "--dataset", "suite:pendulum-mixed", "--preset"]
    code, out = run(argv + ["--run-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "--preset: no MOPO preset for 'suite:pendulum-mixed'" in out
    assert not (tmp_path / "r").exists()
