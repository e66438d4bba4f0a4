"""LeRobot v3.0 datasets: offrl writes one that pyarrow reads as LeRobot lays it out
and reads it back unchanged; a dataset written by hand with pyarrow, as LeRobot's
recorder writes it, reads with its episodes, tasks and last frames as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from conftest import make_episodes  # noqa: E402

from offrl.data import DatasetInfo, from_episodes, validate  # noqa: E402
from offrl.data.formats.lerobot import read_lerobot, write_lerobot  # noqa: E402
from offrl.data.loading import load_dataset  # noqa: E402
from offrl.data.validate import DatasetError  # noqa: E402


def _dataset():
    episodes = make_episodes(num_episodes=4, length=6, obs_dim=3, act_dim=2, seed=1)
    episodes[1]["truncations"][:] = False
    episodes[1]["terminations"][-1] = True  # one terminal episode
    for i, episode in enumerate(episodes):
        episode["costs"] = np.full(6, float(i), np.float32)
        episode["margins"] = np.linspace(-1, 1, 6).astype(np.float32)
    info = DatasetInfo(name="toy", env_id="Pendulum-v1", action_low=(-2.0, -1.0),
                       action_high=(2.0, 1.0))  # fmt: skip
    data = validate(from_episodes(episodes, info))
    return data.with_subsets({"task:reach": [0, 2], "task:push": [1, 3]})


def test_written_dataset_reads_back_unchanged_and_pyarrow_sees_lerobot_layout(tmp_path):
    data = _dataset()
    path = write_lerobot(data, tmp_path / "toy")
    back = load_dataset(path)  # found as a LeRobot directory by the one loader
    for name in (
        "observations",
        "actions",
        "rewards",
        "next_observations",
        "terminations",
        "truncations",
        "costs",
        "margins",
        "episode_starts",
        "episode_lengths",
    ):
        np.testing.assert_array_equal(np.asarray(getattr(back, name)),
                                      np.asarray(getattr(data, name)), err_msg=name)  # fmt: skip
    assert back.info.env_id == "Pendulum-v1" and back.info.action_low == (-2.0, -1.0)
    assert dict(back.info.subsets) == {"task:push": (1, 3), "task:reach": (0, 2)}
    # A second reader: pyarrow alone, against the v3.0 layout.
    info = json.loads((path / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 4
    assert info["total_frames"] == 24 and info["total_tasks"] == 2 and info["fps"] == 30
    frames = pq.read_table(path / "data" / "chunk-000" / "file-000.parquet")
    assert frames.schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert frames.column("episode_index").to_pylist() == list(np.repeat(range(4), 6))
    assert frames.column("frame_index").to_pylist()[:7] == [0, 1, 2, 3, 4, 5, 0]
    done = np.asarray(frames.column("next.done").to_pylist())
    assert done.sum() == 4 and np.asarray(frames.column("next.terminated").to_pylist()).sum() == 1
    np.testing.assert_allclose(frames.column("timestamp").to_numpy()[:2], [0.0, 1 / 30])
    episodes = pq.read_table(path / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes.column("tasks").to_pylist() == [["reach"], ["push"], ["reach"], ["push"]]
    assert episodes.column("dataset_to_index").to_pylist() == [6, 12, 18, 24]
    tasks = pq.read_table(path / "meta" / "tasks.parquet").to_pandas()
    assert list(tasks.index) == ["push", "reach"] and list(tasks["task_index"]) == [0, 1]
    # The writer replaces nothing unless asked.
    with pytest.raises(FileExistsError):
        write_lerobot(data, path)


def _handwritten(root, version="v3.0", dones=True):
    """What LeRobot's recorder leaves: frames without next observations or the
    termination/truncation split, the task as the pandas index of tasks.parquet."""
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    lengths = [4, 3, 1]
    n = sum(lengths)
    state = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    columns = {
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 2),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(-state.ravel()), 2),
        "timestamp": pa.array(np.concatenate([np.arange(k) for k in lengths]) / 10.0, pa.float32()),
        "frame_index": pa.array(np.concatenate([np.arange(k) for k in lengths])),
        "episode_index": pa.array(np.repeat([0, 1, 2], lengths)),
        "index": pa.array(np.arange(n)),
        "task_index": pa.array(np.repeat([1, 0, 0], lengths)),
    }
    if dones:
        columns["next.reward"] = pa.array(np.arange(n, dtype=np.float32))
        columns["next.done"] = pa.array([False, False, False, True, False, False, True, True])
    # frames stored out of order across two files: the reader sorts by index
    table = pa.table(columns)
    pq.write_table(table.slice(4), root / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(table.slice(0, 4), root / "data" / "chunk-000" / "file-001.parquet")
    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "action": {"dtype": "float32", "shape": [2], "names": None},
                "observation.images.top": {"dtype": "video", "shape": [96, 96, 3]}}  # fmt: skip
    (root / "meta" / "info.json").write_text(json.dumps(
        {"codebase_version": version, "fps": 10, "features": features,
         "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))  # fmt: skip
    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [], "columns": []}
    tasks = pa.table({"task_index": [0, 1], "__index_level_0__": ["stack cubes", "open/close"]})
    pq.write_table(tasks.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}),
                   root / "meta" / "tasks.parquet")  # fmt: skip
    return state


def test_handwritten_lerobot_dataset_reads_by_the_documented_rules(tmp_path):
    state = _handwritten(tmp_path / "rec")
    data = read_lerobot(tmp_path / "rec")
    # Truncation (the default): each episode's last frame has no successor and is
    # dropped; the 1-frame episode goes entirely.
    assert list(np.asarray(data.episode_lengths)) == [3, 2]
    np.testing.assert_array_equal(np.asarray(data.observations), state[[0, 1, 2, 4, 5]])
    np.testing.assert_array_equal(np.asarray(data.next_observations), state[[1, 2, 3, 5, 6]])
    np.testing.assert_array_equal(np.asarray(data.actions), -state[[0, 1, 2, 4, 5]])
    np.testing.assert_array_equal(np.asarray(data.rewards), [0, 1, 2, 4, 5])
    assert list(np.asarray(data.truncations)) == [False, False, True, False, True]
    assert not np.asarray(data.terminations).any()
    assert dict(data.info.subsets) == {"task:open-close": (0,), "task:stack cubes": (1,)}
    # Termination: every frame kept, the last one terminal with its own observation.
    terminal = read_lerobot(tmp_path / "rec", done_means="termination")
    assert list(np.asarray(terminal.episode_lengths)) == [4, 3, 1]
    np.testing.assert_array_equal(np.asarray(terminal.next_observations)[3], state[3])
    assert list(np.flatnonzero(np.asarray(terminal.terminations))) == [3, 6, 7]
    # Selecting a task's episodes goes through the one subset mechanism.
    assert load_dataset(tmp_path / "rec", filter_key="task:stack cubes").num_episodes == 1


def test_lerobot_errors_name_the_problem(tmp_path):
    _handwritten(tmp_path / "old", version="v2.1")
    with pytest.raises(DatasetError, match="offrl reads v3.0.*convert_dataset_v21_to_v30"):
        read_lerobot(tmp_path / "old")
    _handwritten(tmp_path / "rec", dones=False)
    with pytest.raises(DatasetError, match="images and videos are not read"):
        read_lerobot(tmp_path / "rec", observation_keys=("observation.images.top",))
    with pytest.raises(DatasetError, match="no feature 'observation.joints'"):
        read_lerobot(tmp_path / "rec", observation_keys=("observation.joints",))
    data = read_lerobot(tmp_path / "rec")  # no rewards: an imitation dataset
    assert data.rewards is None and data.missing_fields() == ("rewards",)


def test_cli_converts_to_lerobot_and_trains_on_it(tmp_path, capsys):
    from offrl.cli import main

    write_lerobot(_dataset(), tmp_path / "toy")
    main(["data", "convert", str(tmp_path / "toy"), str(tmp_path / "again"), "--format",
          "lerobot", "--filter-key", "task:reach"])  # fmt: skip
    assert "LeRobot v3.0" in " ".join(capsys.readouterr().out.split())
    again = read_lerobot(tmp_path / "again")
    assert again.num_episodes == 2 and dict(again.info.subsets) == {"task:reach": (0, 1)}
    main(["train", "bc", "--dataset", str(tmp_path / "again"), "--run-dir", str(tmp_path / "bc"),
          "--steps", "5", "--eval-every", "0", "--checkpoint-every", "5", "--heldout-episodes",
          "0", "--hidden-dims", "8", "--no-progress"])  # fmt: skip
    assert json.loads((tmp_path / "bc" / "config.json").read_text())["dataset"].endswith("again")
