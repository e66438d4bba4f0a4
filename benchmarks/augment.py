"""Data augmentation: SynthER's two offline claims and GuDA against random augmentation.

GuDA (``--only guda``): see :func:`guda_section`.

    python benchmarks/augment.py --only guda --output benchmarks/results/augment-pendulum.json

SynthER (``--only synther``), on ``suite:pendulum-mixed`` (100 episodes, 20,000
transitions), TD3+BC (its paper's offline agent), ``--steps`` updates:
  1. a small subset (every ``--subset-every``-th episode: 10 by default, 10%, 2,000
     transitions; ``--subset-every 33``: 4 episodes, 800 transitions) alone against the same subset
     with ``--upsample`` synthetic transitions from a diffusion model fitted to it;
  2. the full dataset against ``--synthetic`` synthetic transitions alone.
Each seed s (0, 1, 2) gets its own diffusion model (seed s) and its own agent (seed
s), so the spread includes the generative model's. The final and the best policy
are scored on ``--heldout`` held-out episodes (best: chosen by the periodic
evaluations every 1,000 updates, on other episodes); mean and sample std over seeds.
Also: the diffusion model's fit time and samples per second, and how physical the
samples are: the RMSE of the synthetic s' and r against Pendulum's true dynamics
and reward applied to the synthetic (s, a).

    python benchmarks/augment.py --only synther --output benchmarks/results/augment-pendulum.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import tempfile
import time

import jax
import numpy as np

from offrl.curate import synther
from offrl.data.dataset import concatenate
from offrl.data.loading import load_dataset
from offrl.run.settings import TrainConfig
from offrl.run.train import train

SEEDS = (0, 1, 2)


def pendulum_truth(observations: np.ndarray, actions: np.ndarray):
    """Pendulum-v1's next observation and reward for ``(s, a)`` (g = 10, m = l = 1)."""
    cos, sin, speed = observations.T
    theta = np.arctan2(sin, cos)
    torque = np.clip(actions[:, 0], -2.0, 2.0)
    angle = (theta + np.pi) % (2 * np.pi) - np.pi
    reward = -(angle**2 + 0.1 * speed**2 + 0.001 * torque**2)
    new_speed = np.clip(speed + (3 * 10.0 / 2 * sin + 3.0 * torque) * 0.05, -8, 8)
    new_theta = theta + new_speed * 0.05
    return np.stack([np.cos(new_theta), np.sin(new_theta), new_speed], 1), reward


def physics_errors(dataset) -> dict:
    host = dataset.to_numpy()
    next_obs, reward = pendulum_truth(np.asarray(host.observations), np.asarray(host.actions))
    return {
        "next_observation_rmse": float(np.sqrt(np.mean((host.next_observations - next_obs) ** 2))),
        "reward_rmse": float(np.sqrt(np.mean((host.rewards - reward) ** 2))),
        "unit_circle_error": float(
            np.mean(np.abs(np.hypot(host.observations[:, 0], host.observations[:, 1]) - 1.0))
        ),
    }


def score(dataset_for_seed, args, workdir, name, algorithm="td3_bc", config=None) -> dict:
    """Each seed's agent on its own dataset; final and best held-out scores."""
    final, best = [], []
    for seed in SEEDS:
        train_config = TrainConfig(
            steps=args.steps,
            eval_every=1000,
            eval_episodes=5,
            checkpoint_every=args.steps,
            seeds=(seed,),
            heldout_episodes=args.heldout,
            progress=False,
        )
        summary = train(
            algorithm, dataset_for_seed(seed), workdir / f"{name}-{seed}", config, train_config
        )
        final.append(float(summary["final_per_seed"][0]))
        best.append(float(summary["best_per_seed"][0]))
    result = {
        kind: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)), "per_seed": v}
        for kind, v in (("final", final), ("best", best))
    }
    print(name, result, flush=True)
    return result


def synthetic_sets(real, count, args, label) -> tuple[dict, dict]:
    """One synthetic dataset per seed, with fit and sampling timings and physics."""
    sets, report = {}, {"fits": []}
    for seed in SEEDS:
        config = dataclasses.replace(synther.Config(steps=args.diffusion_steps), seed=seed)
        began = time.perf_counter()
        model = synther.fit_model(real, config)
        fitted = time.perf_counter()
        synthetic = model.sample_dataset(count)
        sampled = time.perf_counter()
        sets[seed] = synthetic
        report["fits"].append(
            {
                "seed": seed,
                "fit_seconds": fitted - began,
                "sample_seconds": sampled - fitted,
                "samples_per_second": count / (sampled - fitted),
                "loss_first": float(model.losses[:100].mean()),
                "loss_last": float(model.losses[-100:].mean()),
                "physics": physics_errors(synthetic),
            }
        )
        print(label, report["fits"][-1], flush=True)
    return sets, report


def synther_section(args, workdir) -> dict:
    data = load_dataset("suite:pendulum-mixed")
    subset = data.select_episodes(np.arange(0, data.num_episodes, args.subset_every))
    out = {
        "dataset": "suite:pendulum-mixed",
        "subset": {"episodes": subset.num_episodes, "transitions": subset.size},
        "real_physics": physics_errors(data),
        "copy_baseline_physics": physics_errors(data.replace(next_observations=data.observations)),
    }
    small, out["subset_diffusion"] = synthetic_sets(subset, args.upsample, args, "subset")
    out["subset_real"] = score(lambda s: subset, args, workdir, "subset-real")

    def mixed(seed):
        synthetic = small[seed].replace(info=subset.info)
        return concatenate([subset.replace(weights=None), synthetic], subset.info)

    out["subset_upsampled"] = score(mixed, args, workdir, "subset-upsampled")
    if args.subset_only:
        return out
    full, out["full_diffusion"] = synthetic_sets(data, args.synthetic, args, "full")
    out["full_real"] = score(lambda s: data, args, workdir, "full-real")
    out["full_synthetic_only"] = score(
        lambda s: full[s].replace(info=data.info), args, workdir, "full-synthetic"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("synther", "guda", "speed"), required=True)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--diffusion-steps", type=int, default=20_000)
    parser.add_argument("--upsample", type=int, default=20_000)
    parser.add_argument("--synthetic", type=int, default=20_000)
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--subset-every", type=int, default=10, help="every k-th episode")
    parser.add_argument("--subset-only", action="store_true")
    parser.add_argument("--per-operator", type=int, default=5, help="GuDA: episodes per operator")
    parser.add_argument("--key", default=None, help="results key (default: --only)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sections = {"synther": synther_section, "guda": guda_section, "speed": speed_section}
        result = sections[args.only](args, pathlib.Path(tmp))
    result["settings"] = vars(args)
    result["seconds"] = time.perf_counter() - began
    output = pathlib.Path(args.output)
    existing = json.loads(output.read_text()) if output.exists() else {}
    existing[args.key or args.only] = result
    output.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def speed_section(args, workdir) -> dict:
    """SynthER's sampling throughput: the default model (256 x 3) after 1,000 updates
    (speed does not depend on training), 20,000 samples three times after a warm-up
    call that compiles the sampler; and the time of 5,000 updates."""
    data = load_dataset("suite:pendulum-mixed")
    model = synther.fit_model(data, synther.Config(steps=1000))
    model.sample_vectors(10_000, jax.random.PRNGKey(0))
    times = []
    for i in range(3):
        began = time.perf_counter()
        model.sample_vectors(20_000, jax.random.PRNGKey(i + 1))
        times.append(time.perf_counter() - began)
    began = time.perf_counter()
    synther.fit_model(data, synther.Config(steps=5000))
    return {
        "sample_20000_seconds": times,
        "median_samples_per_second": 20_000 / float(np.median(times)),
        "fit_5000_updates_seconds": time.perf_counter() - began,
    }


def guda_section(args, workdir) -> dict:
    """GuDA on a small, poor PointMaze dataset: the first ``--per-operator`` (5)
    episodes of each of the two ``worse`` operators of ``suite:pointmaze-operators``
    (UMaze, dense reward, a fixed target; 5 each: 10 episodes, 3,000 transitions),
    alone, with ``--segments`` augmented 20-step segments kept by GuDA's progress
    predicate, and with as many kept without it (random augmentation). IQL,
    ``--steps`` updates; augmentation seed = agent seed."""
    from offrl.algos import iql
    from offrl.curate import guda

    operators = load_dataset("suite:pointmaze-operators")
    ids = np.concatenate(
        [operators.subset_episodes(name)[: args.per_operator] for name in ("worse_1", "worse_2")]
    )
    small = operators.select_episodes(ids)
    out = {
        "dataset": "suite:pointmaze-operators, episodes " + ", ".join(map(str, ids)),
        "transitions": small.size,
        "mean_reward_per_step": float(np.mean(small.rewards)),
    }
    augmented: dict[str, dict] = {"guided": {}, "unguided": {}}
    for kind in augmented:
        reports = []
        for seed in SEEDS:
            config = guda.Config(segments=args.segments, seed=seed, guided=kind == "guided")
            began = time.perf_counter()
            data, report = guda.augment_pointmaze(small, config)
            report["seconds"] = time.perf_counter() - began
            report["mean_reward_per_step"] = float(np.mean(data.subset("augmented").rewards))
            augmented[kind][seed] = data
            reports.append(report)
        out[f"{kind}_augmentation"] = reports
        print(kind, reports, flush=True)

    def scored(dataset_for_seed, name):
        return score(dataset_for_seed, args, workdir, name, "iql", iql.Config())

    out["iql_none"] = scored(lambda s: small, "none")
    out["iql_unguided"] = scored(lambda s: augmented["unguided"][s], "unguided")
    out["iql_guided"] = scored(lambda s: augmented["guided"][s], "guided")
    return out


if __name__ == "__main__":
    main()
