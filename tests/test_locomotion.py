"""Locomotion recipes: deterministic random-policy data on Gymnasium MuJoCo v5."""

import numpy as np

from offrl.suites import locomotion


def test_random_recipe_is_deterministic_and_valid():
    first = locomotion.build("hopper-random", num_steps=2000)
    second = locomotion.build("hopper-random", num_steps=2000)
    assert first.digest() == second.digest()
    assert first.size == 2000 and first.info.env_id == "Hopper-v5"
    # Random Hopper falls within tens of steps: true terminations, no bootstrap.
    assert first.terminations.sum() >= 20
    assert first.truncations.sum() == 1  # only the cut at the dataset size
    assert np.all(np.abs(first.actions) <= 1.0)
    assert first.observation_dim == 11 and first.action_dim == 3
