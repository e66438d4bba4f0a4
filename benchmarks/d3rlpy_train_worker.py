"""Trains and evaluates one d3rlpy agent on arrays exported by d3rlpy_scores.py.

Runs in d3rlpy's own venv (benchmarks/setup_d3rlpy.sh).
Usage: python d3rlpy_train_worker.py ARRAYS.npz ALGO UPDATES SEED ENV_ID EPISODES
Prints one JSON line with the returns of the final policy and the training time.

Settings are those of d3rlpy's own reproduction scripts
(reproductions/offline/td3_plus_bc.py and iql.py): TD3+BC with alpha 2.5 and
standardized observations; IQL with expectile 0.7, temperature 3, weights
clipped at 100, rewards scaled by 1000 / (max - min episode return), and a
cosine schedule on the actor's learning rate over the run.
"""

import json
import sys
import time

import numpy as np
from d3rlpy_worker import load_mdp_dataset  # the script's directory is on sys.path


def main() -> None:
    import d3rlpy
    import gymnasium as gym
    import torch

    path, algorithm = sys.argv[1], sys.argv[2]
    updates, seed, env_id, episodes = (
        int(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5],
        int(sys.argv[6]),
    )
    dataset = load_mdp_dataset(path)
    d3rlpy.seed(seed)
    if algorithm == "td3_bc":
        algo = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=2.5,
            update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device="cpu:0")
    elif algorithm == "iql":
        algo = d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=updates)
            ),
            batch_size=256,
            weight_temp=3.0,
            max_weight=100.0,
            expectile=0.7,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        ).create(device="cpu:0")
    else:
        raise SystemExit(f"unknown algorithm {algorithm}")
    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=updates,
        n_steps_per_epoch=updates,
        show_progress=False,
        save_interval=updates + 1,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    seconds = time.perf_counter() - start
    # Deterministic policy, resets 10000 + i: offrl's evaluation protocol.
    returns = []
    for episode in range(episodes):
        env = gym.make(env_id)
        observation, _ = env.reset(seed=10_000 + episode)
        total, done = 0.0, False
        while not done:
            action = algo.predict(observation[None].astype(np.float32))[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    print(
        json.dumps(
            {
                "algorithm": algorithm,
                "updates": updates,
                "seed": seed,
                "train_seconds": seconds,
                "returns": returns,
                "torch_threads": torch.get_num_threads(),
                "d3rlpy": d3rlpy.__version__,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
