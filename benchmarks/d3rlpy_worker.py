"""Times d3rlpy updates on arrays written by throughput.py. Runs in d3rlpy's own venv.

Usage: python d3rlpy_worker.py ARRAYS.npz ALGO WARMUP UPDATES
Prints one JSON line: {"algorithm", "updates", "seconds", "updates_per_second"}.
Each update includes sampling its batch from the replay buffer, as offrl's do.
"""

import json
import sys
import time

import numpy as np


def load_mdp_dataset(path: str):
    """The arrays offrl exported (``observations``, ``actions``, ``rewards``,
    ``terminations``, ``truncations``) as a d3rlpy ``MDPDataset``; shared with
    d3rlpy_train_worker.py."""
    import d3rlpy

    data = np.load(path)
    return d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"],
        rewards=data["rewards"],
        terminals=data["terminations"].astype(np.float32),
        timeouts=data["truncations"].astype(np.float32),
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )


def main() -> None:
    import d3rlpy
    import torch

    path, algorithm, warmup, updates = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dataset = load_mdp_dataset(path)
    encoder = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[256, 256])
    common = {
        "batch_size": 256,
        "actor_encoder_factory": encoder,
        "critic_encoder_factory": encoder,
    }
    configs = {
        "bc": lambda: d3rlpy.algos.BCConfig(batch_size=256, encoder_factory=encoder),
        "td3_bc": lambda: d3rlpy.algos.TD3PlusBCConfig(**common),
        "iql": lambda: d3rlpy.algos.IQLConfig(**common, value_encoder_factory=encoder),
        "cql": lambda: d3rlpy.algos.CQLConfig(**common),
        "rebrac": lambda: d3rlpy.algos.ReBRACConfig(**common),
        "awac": lambda: d3rlpy.algos.AWACConfig(**common),
        # d3rlpy has no SAC-N or EDAC: its SAC with 10 critics is SAC-N's computation
        # (EDAC adds the gradient-diversity term to it).
        "sac_n": lambda: d3rlpy.algos.SACConfig(**common, n_critics=10),
        "edac": lambda: d3rlpy.algos.SACConfig(**common, n_critics=10),
        "dt": lambda: d3rlpy.algos.DecisionTransformerConfig(
            batch_size=64,
            context_size=20,
            num_layers=3,
            num_heads=1,
            encoder_factory=d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[128]),
        ),
    }
    algo = configs[algorithm]().create(device="cpu:0")
    algo.build_with_dataset(dataset)
    torch.manual_seed(0)
    if algorithm == "dt":

        def batch():
            return dataset.sample_trajectory_batch(64, length=20)

    else:

        def batch():
            return dataset.sample_transition_batch(256)

    for _ in range(warmup):
        algo.update(batch())
    start = time.perf_counter()
    for _ in range(updates):
        algo.update(batch())
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "algorithm": algorithm,
                "updates": updates,
                "seconds": seconds,
                "updates_per_second": updates / seconds,
                "torch_threads": torch.get_num_threads(),
                "d3rlpy": d3rlpy.__version__,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
