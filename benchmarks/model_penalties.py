"""Which uncertainty penalty tracks a learned model's true error where policies go?

The evaluation of "Revisiting Design Choices in Offline Model-Based RL" (Lu et
al., 2022) on the suite's tasks: fit the dynamics ensemble (offrl.model.ensemble)
to a dataset, roll policies of different quality out in the real environment, and
for every visited (s, a) compare each penalty u(s, a) with the model's true error,
the mean over the elites of ||mu_i(s, a) - s'|| against the simulator's next state
s'. The Spearman rank correlation says how well each penalty ranks the states by
error (what a penalized reward needs); the visited states of a policy that leaves
the data are the covariate shift a model sees during MOPO's rollouts.

Policies: uniform random actions, and the final policies of offline runs trained
here on the same data (BC and IQL by default, short runs), plus the data's own
transitions (2,000 drawn at random, most of them rows the fit trained on: the
in-distribution reference).

    python benchmarks/model_penalties.py --dataset suite:pendulum-mixed \\
        --seeds 0 1 2 --output benchmarks/results/model-penalties-pendulum.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data.loading import load_dataset
from offrl.envs import make_env
from offrl.evaluate.policy import load_policy
from offrl.evaluate.statistics import spearman
from offrl.model import PENALTIES, ModelSpec
from offrl.model import ensemble as ens
from offrl.run.train import TrainConfig, train


def visited(env_id: str, policy, episodes: int, seed: int, action_space):
    """``(observations, actions, next_observations)`` of ``episodes`` real episodes;
    ``policy`` is ``None`` for uniform random actions."""
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    obs_rows, act_rows, next_rows = [], [], []
    key = jax.random.PRNGKey(seed)
    for episode in range(episodes):
        observation, _ = env.reset(seed=50_000 + seed * 1000 + episode)
        done = False
        while not done:
            if policy is None:
                action = rng.uniform(action_space.low, action_space.high).astype(np.float32)
            else:
                key, sub = jax.random.split(key)
                action = np.asarray(policy(jnp.asarray(observation)[None, None], sub))[0, 0]
            next_observation, _, terminated, truncated, _ = env.step(action)
            obs_rows.append(observation)
            act_rows.append(action)
            next_rows.append(next_observation)
            observation, done = next_observation, terminated or truncated
    return (np.asarray(obs_rows, np.float32), np.asarray(act_rows, np.float32),
            np.asarray(next_rows, np.float32))  # fmt: skip


def correlations(spec, model, observations, actions, next_observations, key):
    """Spearman of each penalty with the elites' mean next-state error, and that error."""
    mean, std = ens.distribution(spec, model, observations, actions)
    _, _, _, _, draw = ens.step(spec, model, observations, actions, key)
    elite_means = np.asarray(mean)[np.asarray(model.elites), :, :-1]
    error = np.linalg.norm(elite_means - next_observations[None], axis=-1).mean(axis=0)
    out = {"error_mean": float(error.mean()), "rows": int(len(error))}
    for kind in PENALTIES:
        u = np.asarray(ens.penalty(kind, mean, std, draw))
        out[kind] = spearman(u, error)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="suite:pendulum-mixed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10, help="real episodes per policy")
    parser.add_argument("--policy-steps", type=int, default=3000, help="updates of BC and IQL")
    parser.add_argument("--algorithms", nargs="+", default=["bc", "iql"])
    parser.add_argument("--models", type=int, default=7)
    parser.add_argument("--elites", type=int, default=5)
    parser.add_argument("--hidden", type=int, nargs="+", default=[200, 200, 200, 200])
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    data = load_dataset(args.dataset)
    env_id = data.info.env_id
    spec = ModelSpec(
        num_models=args.models,
        num_elites=args.elites,
        hidden_dims=tuple(args.hidden),
        weight_decays=(2.5e-5, 5e-5, *[7.5e-5] * (len(args.hidden) - 2), 1e-4),
        max_epochs=args.max_epochs,
    )
    keys = jnp.stack([jax.random.PRNGKey(s) for s in args.seeds])
    fit_start = time.perf_counter()
    fitted, fit_summary = ens.fit(
        spec, data.observations, data.actions, data.rewards, data.next_observations, keys
    )
    fit_seconds = time.perf_counter() - fit_start

    # the policies: random, and offline runs trained here (one seed each)
    action_space = make_env(env_id).action_space
    policies = {"random": None}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.algorithms:
            run_dir = pathlib.Path(tmp) / name
            config = TrainConfig(
                steps=args.policy_steps,
                eval_every=args.policy_steps,
                checkpoint_every=args.policy_steps,
                eval_episodes=5,
                heldout_episodes=0,
                seeds=(0,),
                progress=False,
            )
            summary = train(name, data, run_dir, train_config=config)
            policy, _ = load_policy(run_dir)
            policies[f"{name} ({summary['final_mean']:.0f})"] = policy
        rows = {
            name: visited(env_id, policy, args.episodes, 0, action_space)
            for name, policy in policies.items()
        }
    # the data itself: a sample of its transitions
    pick = np.random.default_rng(0).choice(data.size, min(2000, data.size), replace=False)
    rows["data"] = (data.observations[pick], data.actions[pick], data.next_observations[pick])

    results: dict[str, dict] = {}
    for name, (observations, actions, next_observations) in rows.items():
        per_seed = []
        for index in range(len(args.seeds)):
            model = jax.tree_util.tree_map(lambda x, i=index: x[i], fitted)
            per_seed.append(
                correlations(
                    spec, model, observations, actions, next_observations, jax.random.PRNGKey(index)
                )  # fmt: skip
            )
        results[name] = {
            key: {
                "mean": float(np.mean([r[key] for r in per_seed])),
                "std": float(np.std([r[key] for r in per_seed], ddof=1))
                if len(per_seed) > 1
                else None,
            }
            for key in ("error_mean", *PENALTIES)
        }
        results[name]["rows"] = per_seed[0]["rows"]

    report = {
        "dataset": args.dataset,
        "env_id": env_id,
        "seeds": args.seeds,
        "spec": {
            k: getattr(spec, k) for k in ("num_models", "num_elites", "hidden_dims", "max_epochs")
        },  # fmt: skip
        "fit": fit_summary,
        "fit_seconds": fit_seconds,
        "results": results,
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind}",
        "seconds": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d"),
    }
    header = "| visited by | rows | error (mean) | " + " | ".join(PENALTIES) + " |"
    print(header)
    print("|" + "---|" * (3 + len(PENALTIES)))
    for name, r in results.items():
        cells = [f"{r[k]['mean']:.2f} ± {r[k]['std'] or 0:.2f}" for k in PENALTIES]
        print(f"| {name} | {r['rows']} | {r['error_mean']['mean']:.3f} | " + " | ".join(cells))
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
