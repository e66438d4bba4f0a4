"""Run an exported offrl policy in a Gymnasium loop with NumPy, Gymnasium and
onnxruntime only: no JAX, no offrl training stack.

    offrl export runs/td3_bc-pendulum-mixed --seed 0      # on the training machine
    python examples/deploy_gym.py runs/td3_bc-pendulum-mixed/export/policy_seed0.onnx \\
        --env Pendulum-v1 --episodes 5

Where offrl is not installed, copy ``src/offrl/deploy.py`` beside this script
(it needs only NumPy and onnxruntime); it is imported from there.
"""

import argparse
import pathlib
import sys

import gymnasium as gym
import numpy as np

try:
    from offrl.deploy import load_policy
except ImportError:  # deploy.py copied beside this script
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from deploy import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="an ONNX file written by `offrl export`")
    parser.add_argument("--env", default=None, help="Gymnasium id (default: the run's)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=10_000, help="reset seed of episode 0")
    args = parser.parse_args()

    policy = load_policy(args.policy)
    env_id = args.env or policy.metadata.get("env_id")
    if env_id is None:
        parser.error("the file records no environment; pass --env")
    env = gym.make(env_id)
    returns = []
    for episode in range(args.episodes):
        observation, _ = env.reset(seed=args.seed + episode)
        policy.reset()
        total, done = 0.0, False
        while not done:
            action = policy(observation)
            observation, reward, terminated, truncated, _ = env.step(action)
            policy.record(action, reward)  # a sequence policy keeps its window
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        print(f"episode {episode}: return {total:.1f}")
    meta = policy.metadata
    print(
        f"{meta['algorithm']} (seed {meta['seed']}, step {meta['step']}) on {env_id}: "
        f"mean return {np.mean(returns):.1f} over {len(returns)} episodes"
    )


if __name__ == "__main__":
    main()
