"""Shared fixtures: a private dataset cache and small hand-made datasets."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# The suite compiles far more than it runs (small networks, a few updates, many
# configurations). XLA's CPU backend at optimization level 1 instead of 3 compiles
# about a third faster and ran the learning tests as fast (2026-12-06, this machine:
# TD3+BC's contract tests 44 s -> 30 s, its tiny-task learning test 16.7 s both ways).
# Set before JAX starts its backend; flags given by the caller come first.
os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=1"])
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from offrl.core import registry  # noqa: E402

# One compilation cache for the session: the online and fine-tuning loops jit fresh
# closures per run, and identical programs then compile once (the SAC interrupt
# test took 36 s without it, under 5 s with it). Only compiles over a second are
# stored (the op-by-op no-jit tests would otherwise write thousands of entries). A
# new directory per session (per worker process under pytest-xdist, the README's
# `-n 2 --dist loadgroup`), so nothing carries over between runs of the suite.
_CACHE = tempfile.mkdtemp(prefix="offrl-jax-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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


def linear_system(dim=2, episodes=100, horizon=20, seed=0, goal=0.0, on_policy=0.0):
    """A known system: ``s' = 0.9 s + 0.5 a`` in ``dim`` dimensions, reward
    ``-|s - goal|^2``, starts uniform in ``[-2, 2]^dim``; the first ``on_policy`` share of
    the episodes act ``a = clip(-s)``, the others uniformly at random; every episode is
    cut by a time limit."""
    from offrl.data import DatasetInfo, from_episodes, validate

    rng = np.random.default_rng(seed)
    out = []
    for e in range(episodes):
        s = rng.uniform(-2, 2, size=dim)
        obs, acts, rews = [], [], []
        for _ in range(horizon):
            a = np.clip(-s, -1, 1) if e < on_policy * episodes else rng.uniform(-1, 1, size=dim)
            obs.append(s.copy())
            acts.append(a)
            rews.append(-float(np.sum((s - goal) ** 2)))
            s = 0.9 * s + 0.5 * a
        obs.append(s.copy())
        truncations = np.zeros(horizon, bool)
        truncations[-1] = True
        out.append(
            {
                "observations": np.asarray(obs, np.float32),
                "actions": np.asarray(acts, np.float32),
                "rewards": np.asarray(rews, np.float32),
                "terminations": np.zeros(horizon, bool),
                "truncations": truncations,
            }
        )
    info = DatasetInfo(name=f"linear-{goal}", action_low=(-1.0,) * dim, action_high=(1.0,) * dim)
    return validate(from_episodes(out, info))


@pytest.fixture
def small_dataset():
    from offrl.data import DatasetInfo, from_episodes, validate

    info = DatasetInfo(name="small", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    return validate(from_episodes(make_episodes(), info))


def train_tiny_sac(run_dir, env_id: str, steps: int, start_steps: int, interval: int):
    """A seconds-long online SAC run (32x32 networks, batch 32) for tests that need
    a real run directory: evaluations and checkpoints every ``interval`` steps."""
    from offrl.algos import sac
    from offrl.finetune.loop import finetune
    from offrl.run.settings import FinetuneConfig

    config = FinetuneConfig(
        env=env_id,
        online_steps=steps,
        seeds=(0,),
        random_steps=start_steps,
        learning_starts=start_steps,
        eval_every=interval,
        early_evaluations=0,
        eval_episodes=2,
        heldout_episodes=0,
        checkpoint_every=interval,
        progress=False,
        batch_size=32,
    )
    finetune("sac", run_dir, config, algo_config=sac.Config(hidden_dims=(32, 32)))
    return run_dir


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Groups for the README's ``-n 2 --dist loadgroup``: a file's tests stay in one
    worker (they share compiled functions and module fixtures, as ``loadfile`` keeps
    them), except the contract tests, split in two halves by algorithm so that the
    largest file spreads over both workers."""
    for item in items:
        group = item.path.name
        params = getattr(item, "callspec", None)
        if group == "test_contract.py" and params is not None and "name" in params.params:
            # two halves, alternating in registry order: each worker shares its compiled
            # primitives among its algorithms, and the sequence models split
            index = registry.names().index(params.params["name"])
            group = f"contract-{index % 2}"
        item.add_marker(pytest.mark.xdist_group(group))
