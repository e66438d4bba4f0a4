"""Checkpoints written before the payload recorded its parts still load with today's
template, which names a part (``best``) they do not hold."""

import json

import numpy as np

from offrl.run import checkpoint


def test_a_checkpoint_without_recorded_parts_loads_without_the_later_ones(tmp_path):
    saved = {"states": {"w": np.full((2, 3), 7.0, np.float32)}, "step": np.int32(5)}
    checkpoint.save(tmp_path, 5, saved)
    manifest_path = tmp_path / "step_5" / checkpoint.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    assert manifest["payload_keys"] == ["states", "step"]
    del manifest["payload_keys"]  # as written before the parts were recorded
    manifest_path.write_text(json.dumps(manifest))
    template = {
        "states": {"w": np.zeros((2, 3), np.float32)},
        "step": np.int32(0),
        "best": {"scores": np.zeros(2)},
    }
    restored = checkpoint.restore(tmp_path, 5, template)
    assert "best" not in restored
    np.testing.assert_array_equal(restored["states"]["w"], saved["states"]["w"])
    # A checkpoint that records its parts gets exactly those.
    checkpoint.save(tmp_path, 6, {**saved, "best": {"scores": np.ones(2)}})
    np.testing.assert_array_equal(checkpoint.restore(tmp_path, 6, template)["best"]["scores"], 1)
