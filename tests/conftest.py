"""Shared fixtures: a private dataset cache and small hand-made datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Suite datasets are built into a per-session cache, never the user's."""
    cache = tmp_path_factory.mktemp("offrl-cache")
    old = os.environ.get("OFFRL_DATA_DIR")
    os.environ["OFFRL_DATA_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("OFFRL_DATA_DIR", None)
    else:
        os.environ["OFFRL_DATA_DIR"] = old


def make_episodes(num_episodes=3, length=5, obs_dim=3, act_dim=2, seed=0, last="truncation"):
    """Consistent per-episode dicts (observations have length + 1 rows)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(num_episodes):
        terminations = np.zeros(length, bool)
        truncations = np.zeros(length, bool)
        if last == "truncation":
            truncations[-1] = True
        elif last == "termination":
            terminations[-1] = True
        episodes.append(
            {
                "observations": rng.normal(size=(length + 1, obs_dim)).astype(np.float32),
                "actions": rng.uniform(-1, 1, size=(length, act_dim)).astype(np.float32),
                "rewards": rng.normal(size=length).astype(np.float32),
                "terminations": terminations,
                "truncations": truncations,
            }
        )
    return episodes


@pytest.fixture
def small_dataset():
    from offrl.data import DatasetInfo, from_episodes, validate

    info = DatasetInfo(name="small", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    return validate(from_episodes(make_episodes(), info))


def train_tiny_sac(run_dir, env_id: str, steps: int, start_steps: int, interval: int):
    """A seconds-long online SAC run (32x32 networks, batch 32) for tests that need
    a real run directory: evaluations and checkpoints every ``interval`` steps."""
    from offrl.algos import sac
    from offrl.run.online import OnlineConfig, train_online

    config = OnlineConfig(
        env_id=env_id,
        steps=steps,
        start_steps=start_steps,
        eval_every=interval,
        eval_episodes=2,
        checkpoint_every=interval,
        progress=False,
        batch_size=32,
    )
    train_online("sac", run_dir, config, sac.Config(hidden_dims=(32, 32)))
    return run_dir
