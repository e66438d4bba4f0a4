"""Shipped behavior: policy files, action logs, shipping a run, the locomotion levels."""

import json

import jax
import numpy as np
import pytest
from conftest import train_tiny_sac

from offrl import suites
from offrl.data import validate
from offrl.evaluate.policy import load_policy
from offrl.run import checkpoint
from offrl.suites import behavior, locomotion
from offrl.suites.policies import replay_from_run


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    """A tiny SAC run on Hopper (shapes of the real thing, seconds to train)."""
    run = tmp_path_factory.mktemp("behavior") / "hopper-sac"
    return train_tiny_sac(run, "Hopper-v5", steps=1500, start_steps=1000, interval=500)


def test_policy_file_round_trip(hopper_run, tmp_path):
    path = behavior.export_policy(hopper_run, tmp_path / "p.npz")
    policy = behavior.load_policy_file(path)
    assert policy.env_id == "Hopper-v5" and policy.meta["algorithm"] == "sac"
    observations = np.random.default_rng(0).normal(size=(7, 11)).astype(np.float32)
    run_policy, _ = load_policy(hopper_run)
    expected = np.asarray(run_policy(observations[None], jax.random.PRNGKey(1)))[0]
    np.testing.assert_array_equal(
        policy.act(observations, jax.random.PRNGKey(1), deterministic=True), expected
    )
    # Stochastic actions: reproducible per key, inside the action bounds.
    first = policy.act(observations, jax.random.PRNGKey(2))
    np.testing.assert_array_equal(first, policy.act(observations, jax.random.PRNGKey(2)))
    assert np.all(np.abs(first) <= 1.0) and not np.allclose(first, expected)


def test_bad_policy_files_are_named(hopper_run, tmp_path):
    path = behavior.export_policy(hopper_run, tmp_path / "p.npz")
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:500])
    with pytest.raises(behavior.BehaviorError, match="not a readable offrl policy file"):
        behavior.load_policy_file(tmp_path / "broken.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["algorithm_config"]["hidden_dims"] = [64, 64]
    np.savez(tmp_path / "other.npz", **{**arrays, "meta": json.dumps(meta)})
    with pytest.raises(behavior.BehaviorError, match="does not match a sac actor"):
        behavior.load_policy_file(tmp_path / "other.npz")
    with pytest.raises(behavior.BehaviorError, match="no policy file"):
        behavior.load_policy_file(tmp_path / "missing.npz")


def test_action_log_regenerates_the_replay_buffer(hopper_run, tmp_path):
    path = behavior.export_action_log(hopper_run, 1200, tmp_path / "log.npz")
    replayed = validate(behavior.replay_action_log(path))
    stored = replay_from_run(hopper_run, 1200)
    assert replayed.size == 1200 and replayed.digest() == stored.digest()
    np.testing.assert_array_equal(replayed.observations, stored.observations)
    # A log that no longer reproduces its run is refused, naming the cause.
    with np.load(path) as data:
        meta, actions = str(data["meta"]), data["actions"].copy()
    actions[5] = -actions[5]
    np.savez(tmp_path / "tampered.npz", meta=meta, actions=actions)
    with pytest.raises(behavior.BehaviorError, match="did not reproduce"):
        behavior.replay_action_log(tmp_path / "tampered.npz")
    assert behavior.replay_action_log(tmp_path / "tampered.npz", check=False).size == 1200


def test_vectorized_collection_is_exact_and_deterministic(hopper_run, tmp_path):
    policy = behavior.load_policy_file(behavior.export_policy(hopper_run, tmp_path / "p.npz"))
    first = validate(behavior.collect_with_policy(policy, 700, seed=3, name="x", num_envs=4))
    second = behavior.collect_with_policy(policy, 700, seed=3, name="x", num_envs=4)
    other = behavior.collect_with_policy(policy, 700, seed=4, name="x", num_envs=4)
    assert first.size == 700 and first.digest() == second.digest() != other.digest()
    # Episodes are in reset-seed order: episode 0 starts from reset(seed=3 * 1_000_003).
    from offrl.envs.registry import make_env

    env = make_env("Hopper-v5")
    np.testing.assert_array_equal(
        first.observations[0], env.reset(seed=3 * 1_000_003)[0].astype(np.float32)
    )
    assert first.terminations.sum() + first.truncations.sum() == first.num_episodes


def test_ship_and_build_the_policy_levels(hopper_run, tmp_path, monkeypatch):
    monkeypatch.setattr(behavior, "BEHAVIOR_ROOT", tmp_path)
    assert suites.missing_behavior("hopper-medium") == "no behavior policies shipped for hopper"
    with pytest.raises(behavior.BehaviorError, match="no behavior policies are shipped"):
        locomotion.build("hopper-expert", num_steps=100)
    manifest = behavior.ship("hopper", hopper_run, 1500, random_return=-1e6, episodes=3)
    assert manifest["expert"]["step"] == 1500 and manifest["expert"]["episodes"] == 3
    first = checkpoint.steps(hopper_run / "checkpoints")[0]  # at an episode end after 500
    assert manifest["medium"]["step"] == first  # the first checkpoint past the threshold
    assert manifest["medium_replay"]["steps"] == first
    assert {p.name for p in tmp_path.joinpath("hopper").iterdir()} == {
        "manifest.json",
        "expert.npz",
        "medium.npz",
        "medium_replay_actions.npz",
        "training_log.jsonl",
    }
    assert suites.missing_behavior("hopper-medium-expert") is None
    expert = locomotion.build("hopper-expert", num_steps=600)
    assert expert.size == 600 and expert.info.name == "hopper-expert"
    assert locomotion.build("hopper-expert", num_steps=600).digest() == expert.digest()
    replay = locomotion.build("hopper-medium-replay")
    assert replay.size == first and replay.digest() == replay_from_run(hopper_run, first).digest()
    mixed = locomotion.build("hopper-medium-expert", num_steps=600)
    medium = locomotion.build("hopper-medium", num_steps=300)
    assert mixed.size == 600
    np.testing.assert_array_equal(mixed.observations[:300], medium.observations)
    np.testing.assert_array_equal(mixed.observations[300:], expert.observations[:300])
    description = locomotion.behavior("hopper-medium")
    assert f"checkpoint step {first}" in description and "stochastic" in description


@pytest.mark.parametrize("name", ["resfit", "vocbf", "td3_bc"])
def test_policy_files_hold_everything_act_reads(name, tmp_path):
    """ResFiT acts through its frozen base, V-OCBF through its filter networks: a
    policy file that kept only the actor reloaded them as fresh random networks."""
    from test_contract import small_config

    from offrl.core.trainer import init_states, seed_keys
    from offrl.data.preprocess import Preprocessor
    from offrl.run.rundir import payload, write_json_atomic
    from offrl.run.settings import to_jsonable

    algo, config = small_config(name)
    init_keys, keys = seed_keys((0, 1))
    states = init_states(algo, config, 3, 2, init_keys)
    pre = Preprocessor.identity(3, 2)
    run = tmp_path / "run"
    checkpoint.save(run / "checkpoints", 5, payload(states, keys, 5, pre))
    write_json_atomic(
        run / "config.json",
        {
            "algorithm": name,
            "kind": "offline",
            "algorithm_config": to_jsonable(config),
            "train_config": {},
            "seeds": [0, 1],
            "observation_dim": 3,
            "action_dim": 2,
            "env_id": None,
        },
    )
    observations = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    run_policy, _ = load_policy(run)
    for seed_index in (0, 1):
        path = behavior.export_policy(run, tmp_path / f"p{seed_index}.npz", seed_index=seed_index)
        policy = behavior.load_policy_file(path)
        expected = np.asarray(run_policy(np.stack([observations] * 2), jax.random.PRNGKey(0)))
        got = policy.act(observations, jax.random.PRNGKey(0), deterministic=True)
        np.testing.assert_array_equal(got, expected[seed_index])
    if name != "td3_bc":  # a file without the other networks is refused, not guessed
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if not k.startswith("state/")}
        np.savez(tmp_path / "actor-only.npz", **arrays)
        with pytest.raises(behavior.BehaviorError, match="needs its"):
            behavior.load_policy_file(tmp_path / "actor-only.npz")
