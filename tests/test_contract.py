"""Contract tests over every registered algorithm."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.core import registry
from offrl.core.trainer import (
    build_chunk,
    fill_run_length,
    history_length,
    init_states,
    seed_keys,
)
from offrl.data import DatasetInfo, from_episodes
from offrl.run import checkpoint

SMALL = {
    "bc": {"hidden_dims": (16, 16)},
    "td3_bc": {"hidden_dims": (16, 16)},
    "iql": {"hidden_dims": (16, 16)},
    "cql": {"hidden_dims": (16, 16), "num_sampled_actions": 3},
    "sac": {"hidden_dims": (16, 16)},
    "vocbf": {"hidden_dims": (16, 16), "bc_hidden_dims": (16,), "dynamics_hidden_dims": (8,)},
    "td3_bc_lag": {"hidden_dims": (16, 16)},
    "calql": {"hidden_dims": (16, 16), "critic_hidden_dims": (16, 16), "num_sampled_actions": 3},
    "rlpd": {"hidden_dims": (16, 16), "num_critics": 3},
    "resfit": {
        "hidden_dims": (16, 16),
        "base_hidden_dims": (16,),
        "num_critics": 3,
        "critic_warmup": 0,
    },
    "h2o": {"hidden_dims": (16, 16), "gap_samples": 2},
    # The meta actor moves after the K-th of the test's 3 updates.
    "moorl": {"hidden_dims": (16, 16), "inner_steps": 3},
    "concurrent_bc": {"hidden_dims": (16, 16)},
    "gpayn": {"hidden_dims": (16, 16)},
    "rm_rl": {"hidden_dims": (16, 16)},
    "arsq": {"hidden_dims": (16, 16), "levels": 2, "bins": 3},
    "safe_set": {
        "hidden_dims": (16, 16),
        "qc_hidden_dims": (16, 16),
        "policy_candidates": 3,
        "uniform_candidates": 2,
    },
    "rebrac": {"hidden_dims": (16, 16, 16)},
    "awac": {"hidden_dims": (16, 16)},
    "edac": {"hidden_dims": (16, 16), "num_critics": 4},
    "sac_n": {"hidden_dims": (16, 16), "num_critics": 4},
    "dt": {"embedding_dim": 8, "num_layers": 1, "context_length": 3, "warmup_steps": 0},
    "mo_dt": {"embedding_dim": 8, "num_layers": 1, "context_length": 3, "warmup_steps": 0},
    "meta_dt": {
        "embedding_dim": 8,
        "num_layers": 1,
        "context_length": 3,
        "warmup_steps": 0,
        "context_horizon": 2,
        "context_dim": 4,
        "context_hidden": 8,
        "prompt_length": 2,
        "prompt_pool": 4,
    },
    "dmamba": {
        "embedding_dim": 8,
        "num_layers": 1,
        "context_length": 3,
        "warmup_steps": 0,
        "evolve_every": 2,
    },
    "bc_rnn": {"hidden_dim": 8, "num_layers": 1, "context_length": 3},
    "iql_history": {"encoder_dim": 8, "hidden_dims": (16, 16), "context_length": 3},
    "chunked_iql": {"hidden_dims": (16, 16), "chunk_length": 3, "bc_steps": 1},
    **{
        name: {
            "hidden_dims": (16, 16),
            "model_num_models": 3,
            "model_num_elites": 2,
            "model_hidden_dims": (8,),
            "model_weight_decays": (1e-4, 1e-4),
            "rollout_batch_size": 40,
            "rollout_freq": 10,
            "rollout_length": 2,
            "model_retain_epochs": 2,
            "termination": "never",
            **({"num_samples": 2} if name == "mobile" else {}),
        }
        for name in ("mopo", "mobile")
    },
    "uni_o4": {
        "hidden_dims": (16, 16),
        "num_policies": 2,
        "value_hidden_dims": (16,),
        "critic_hidden_dims": (16,),
        "model_num_models": 3,
        "model_num_elites": 2,
        "model_hidden_dims": (8,),
        "model_weight_decays": (1e-4, 1e-4),
        "amq_starts": 8,
        "amq_horizon": 3,
        "gate_every": 2,
        "termination": "never",
    },
}
ALGORITHMS = registry.names()


def small_config(name):
    algo = registry.get(name)
    return algo, fill_run_length(algo.Config(**SMALL.get(name, {})), 100)


@pytest.fixture(scope="module")
def device_dataset():
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(4):
        length = 25
        episodes.append(
            {
                "observations": rng.normal(size=(length + 1, 3)).astype(np.float32),
                "actions": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
                "rewards": rng.normal(size=length).astype(np.float32),
                "terminations": np.r_[np.zeros(length - 1, bool), True],
                "truncations": np.zeros(length, bool),
                # safety fields, for the algorithms that need them (vocbf, td3_bc_lag)
                "margins": rng.normal(size=length).astype(np.float32),
                "costs": (rng.random(length) < 0.3).astype(np.float32),
                # derived, for the algorithms that read it (rebrac)
                "next_actions": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
                # derived, for the sequence algorithms (returns-to-go)
                "mc_returns": rng.normal(size=length).astype(np.float32),
            }
        )
    return from_episodes(episodes, DatasetInfo(name="contract")).to_device()


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_registry_contract(name):
    algo = registry.get(name)
    for attribute in ("Config", "State", "init", "update", "act", "DEFAULT_REWARD_SCALING"):
        assert hasattr(algo, attribute)
    assert dataclasses.is_dataclass(algo.Config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        algo.Config().__setattr__("discount", 0.5)
    assert algo.__doc__ and "Deviation" in algo.__doc__


def test_registry_unknown_name():
    with pytest.raises(KeyError, match="registered"):
        registry.get("nope")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_update_finite_and_changes_parameters(name, device_dataset):
    algo, config = small_config(name)
    init_keys, keys = seed_keys((0, 1))
    states = init_states(algo, config, 3, 2, init_keys)
    chunk = build_chunk(algo, config, 16, 3)
    new_states, _, metrics = chunk(states, keys, device_dataset)
    for key, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), f"{name}: {key} = {value}"
    assert any("loss" in k for k in metrics)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(leaves(states.actor.params), leaves(new_states.actor.params), strict=True)
    ]
    assert all(changed), f"{name}: some actor parameters did not change"
    assert int(new_states.step[0]) == 3


#: Op-by-op execution is the suite's most expensive check (10-50 s per algorithm: the
#: one-time compilation of every primitive, not the updates) and guards against
#: Python-level side effects in an update. It runs for one algorithm per family of
#: update code: BC, the TD3 update (TD3+BC; ReBRAC, TD3+BC-Lag and ResFiT share
#: ``delayed_actor_update``), IQL (AWAC shares its weights, Cal-QL is CQL), CQL, SAC
#: (RLPD, H2O, EDAC and SAC-N are SAC variants), V-OCBF, and one of each kind of
#: windowed update (BC-RNN's recurrence, chunked IQL's chunks). DT, MO-DT, Decision
#: Mamba and history IQL are functional flax code on the same window path.
OP_BY_OP = ("bc", "td3_bc", "iql", "cql", "sac", "vocbf", "bc_rnn", "chunked_iql")


@pytest.mark.parametrize("name", OP_BY_OP)
def test_jit_equals_no_jit(name, device_dataset):
    algo, config = small_config(name)
    init_keys, keys = seed_keys((0, 1))
    states = init_states(algo, config, 3, 2, init_keys)
    jitted = build_chunk(algo, config, 16, 3, jit=True)(states, keys, device_dataset)
    with jax.disable_jit():
        plain = build_chunk(algo, config, 16, 3, jit=False)(states, keys, device_dataset)
    for a, b in zip(leaves(jitted[0]), leaves(plain[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for key in jitted[2]:
        np.testing.assert_allclose(jitted[2][key], plain[2][key], rtol=2e-3, atol=1e-4)


#: Algorithms whose State and init are another's (SAC-N: EDAC's; MO-DT and Decision
#: Mamba: DT's, with other settings; MOBILE: MOPO's, its update covered above): their
#: checkpoints and seed batching are the other's code, whose tests below run (20-27 s
#: each of compilation saved).
SHARED_STATE = ("sac_n", "mo_dt", "dmamba", "mobile")


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if n not in SHARED_STATE])
def test_save_load_gives_identical_actions(name, device_dataset, tmp_path):
    algo, config = small_config(name)
    init_keys, keys = seed_keys((0, 1))
    states = init_states(algo, config, 3, 2, init_keys)
    states, keys, _ = build_chunk(algo, config, 16, 3)(states, keys, device_dataset)
    checkpoint.save(tmp_path, 3, {"states": states, "keys": keys})
    template = {"states": init_states(algo, config, 3, 2, seed_keys((7, 8))[0]), "keys": keys}
    restored = checkpoint.restore(tmp_path, 3, template)
    observations = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 3)), jnp.float32)
    length = history_length(algo, config)
    if length is not None:  # a sequence algorithm acts on windows: [2 seeds, 9, K, ...]
        observations = {
            "observations": jnp.repeat(observations[:, :, None], length, axis=2),
            "actions": jnp.zeros((2, 9, length, 2)),
            "returns_to_go": jnp.ones((2, 9, length)),
            "timesteps": jnp.broadcast_to(jnp.arange(length), (2, 9, length)),
            "mask": jnp.ones((2, 9, length)),
        }
    act = jax.jit(jax.vmap(lambda s, o: algo.act(s, o, jax.random.PRNGKey(0), True, config)))
    np.testing.assert_array_equal(act(states, observations), act(restored["states"], observations))
    for a, b in zip(leaves(states), leaves(restored["states"]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if n not in SHARED_STATE])
def test_two_seeds_under_vmap_equal_separate_runs(name, device_dataset):
    algo, config = small_config(name)
    chunk = build_chunk(algo, config, 16, 3)
    init_keys, keys = seed_keys((0, 1))
    together, _, metrics = chunk(init_states(algo, config, 3, 2, init_keys), keys, device_dataset)
    # Each seed beside another seed (9) gives what it gives beside its usual partner:
    # nothing crosses between the lanes of the vmap. (Pairs, not single seeds, so that
    # one compiled two-seed chunk serves every contract test of the algorithm.)
    for index, pair in enumerate(((0, 9), (9, 1))):
        init_keys, keys = seed_keys(pair)
        other, _, _ = chunk(init_states(algo, config, 3, 2, init_keys), keys, device_dataset)
        for a, b in zip(leaves(together), leaves(other), strict=True):
            np.testing.assert_allclose(a[index], b[index], rtol=1e-4, atol=1e-5)
    # Different seeds really differ.
    first = leaves(together.actor.params)[0]
    assert not np.allclose(first[0], first[1])


def test_corrupt_checkpoint_is_reported(tmp_path, device_dataset):
    algo, config = small_config("bc")
    states = init_states(algo, config, 3, 2, seed_keys((0,))[0])
    checkpoint.save(tmp_path, 1, {"states": states})
    for path in (tmp_path / "step_1").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(b"\0" * 7)
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.restore(tmp_path, 1, {"states": states})
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.restore(tmp_path, 2, {"states": states})
