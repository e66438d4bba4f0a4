"""Offline RL on learned labels: rewards from preferences, actions from inverse dynamics.

On ``suite:pendulum-mixed``: a scripted teacher labels N random pairs of 50-step
segments (N on a grid, with and without 20% flipped labels); a Bradley-Terry reward
ensemble (``offrl.curate.preferences`` defaults) is fitted and the dataset relabeled;
IQL trains on it. Against IQL on the true rewards and BC (which reads no reward).
IQL and BC: 128x128, ``--steps`` updates, seeds 0, 1, 2 in parallel; the final and
the best policy scored on ``--heldout`` held-out episodes per seed (best: chosen by
the periodic evaluations every 1,000 updates, on other episodes); mean and sample std.

With ``--only actions``: SS-ORL's setting: 10% of the trajectories keep their actions
(drawn from the lower half by return), the inverse-dynamics model labels the rest, and
IQL trains on the result; against IQL on the true actions and BC on the labeled 10%.

    python benchmarks/labeling.py --output benchmarks/results/labeling-pendulum.json
    python benchmarks/labeling.py --only actions --output benchmarks/results/labeling-pendulum.json

With ``--only progress``: a sparse-reward task, ``suite:pointmaze-umaze`` (reward 1 within
0.45 of the goal). 20 demonstrations (its first 20 episodes, each cut at its first
success) train the progress model (``offrl.curate.progress`` defaults); 30 other
episodes (9,000 transitions) are the training data, with their sparse rewards or with
the progress reward, with and without P(done | s') added; IQL (256x256) on each, scored
by the environment's sparse return.

With ``--only pretraining``: V-PTR's setting on Pendulum: the value network is
pre-trained (``offrl.algos.value_pretraining`` defaults, 20,000 TD updates) on
``suite:pendulum-expert`` with its actions dropped (trajectories of a better
behaviour, rewards kept); IQL (256x256) trains on the 10 lowest-return episodes of
``suite:pendulum-mixed`` from scratch and from the pre-training, at ``--steps``.

    python benchmarks/labeling.py --only progress --steps 10000 \
        --output benchmarks/results/labeling-pendulum.json
    python benchmarks/labeling.py --only pretraining \
        --output benchmarks/results/labeling-pendulum.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import tempfile
import time

import numpy as np

from offrl.algos import bc, iql
from offrl.curate import inverse_dynamics
from offrl.curate import preferences as prefs
from offrl.data.loading import load_dataset
from offrl.run.settings import TrainConfig
from offrl.run.train import train


def run(algorithm, config, dataset, args, workdir, name) -> dict:
    train_config = TrainConfig(
        steps=args.steps,
        eval_every=1000,
        eval_episodes=5,
        checkpoint_every=args.steps,
        seeds=(0, 1, 2),
        heldout_episodes=args.heldout,
        progress=False,
    )
    summary = train(algorithm, dataset, workdir / name, config, train_config)
    final = [float(x) for x in summary["final_per_seed"]]
    best = [float(x) for x in summary["best_per_seed"]]
    return {
        "final": {"mean": float(np.mean(final)), "std": float(np.std(final, ddof=1))},
        "best": {"mean": float(np.mean(best)), "std": float(np.std(best, ddof=1))},
    }


def actions_section(dataset, args, workdir) -> dict:
    labeled = inverse_dynamics.labeled_trajectories(dataset, 0.1, seed=0)
    fitted = time.perf_counter()
    relabeled, diagnostics = inverse_dynamics.fit_and_label(dataset, labeled)
    fit_seconds = time.perf_counter() - fitted
    iql_config = iql.Config(hidden_dims=(128, 128))
    return {
        "labeled_episodes": [int(i) for i in labeled],
        "labeled_mean_return": float(dataset.episode_returns()[labeled].mean()),
        "fit": {**diagnostics, "seconds": fit_seconds},
        "iql_inferred_actions": run("iql", iql_config, relabeled, args, workdir, "idm-iql"),
        "bc_labeled_10_percent": run(
            "bc", bc.Config(hidden_dims=(128, 128)), dataset.select_episodes(labeled), args,
            workdir, "idm-bc",
        ),
    }  # fmt: skip


def progress_section(args, workdir) -> dict:
    from offrl.curate import progress

    maze = load_dataset("suite:pointmaze-umaze")
    firsts = []
    for i in range(20):
        episode = maze.select_episodes([i])
        hits = np.flatnonzero(np.asarray(episode.rewards) > 0)
        end = int(hits[0]) + 1 if hits.size else episode.size
        firsts.append(end)
    demos = maze.select_episodes(range(20))
    keep = np.concatenate(
        [np.arange(s, s + n) for s, n in zip(demos.episode_starts, firsts, strict=True)]
    )
    demos = demos.replace(
        **{k: np.asarray(v)[keep] for k, v in demos.step_fields().items()},
        episode_starts=np.concatenate([[0], np.cumsum(firsts)[:-1]]).astype(np.int64),
        episode_lengths=np.asarray(firsts, np.int64),
    )
    data = maze.select_episodes(range(20, 50))
    fitted = time.perf_counter()
    model = progress.fit_model(demos)
    fit_seconds = time.perf_counter() - fitted
    labeled = progress.relabel(data, model)
    config = iql.Config()
    out = {
        "demonstrations": {"episodes": 20, "mean_length": float(np.mean(firsts))},
        "fit_seconds": fit_seconds,
        "loss_first": float(model.losses[:50].mean()),
        "loss_last": float(model.losses[-50:].mean()),
        "reward_mean": float(np.mean(labeled.rewards)),
        "iql_sparse_reward": run("iql", config, data, args, workdir, "sparse"),
    }
    print("sparse", out["iql_sparse_reward"], flush=True)
    out["iql_progress_reward"] = run("iql", config, labeled, args, workdir, "progress")
    print("progress", out["iql_progress_reward"], flush=True)
    with_done = dataclasses.replace(
        model, config=dataclasses.replace(model.config, done_reward=1.0)
    )
    labeled_done = progress.relabel(data, with_done)
    out["reward_mean_with_done"] = float(np.mean(labeled_done.rewards))
    out["iql_progress_and_done_reward"] = run("iql", config, labeled_done, args, workdir, "done")
    print("progress + done", out["iql_progress_and_done_reward"], flush=True)
    return out


def pretraining_section(args, workdir) -> dict:
    from offrl.algos import value_pretraining as vptr

    expert = load_dataset("suite:pendulum-expert").replace(actions=None)
    mixed = load_dataset("suite:pendulum-mixed")
    poor = mixed.select_episodes(np.argsort(mixed.episode_returns())[:10])
    fitted = time.perf_counter()
    pretrained = vptr.pretrain(expert)
    fit_seconds = time.perf_counter() - fitted
    path = vptr.save(workdir / "value.npz", pretrained)
    out = {
        "pretraining": {
            "dataset": "suite:pendulum-expert (actions dropped)",
            "seconds": fit_seconds,
            "loss_first": float(pretrained.losses[:100].mean()),
            "loss_last": float(pretrained.losses[-100:].mean()),
        },
        "training_data": {"episodes": 10, "mean_return": float(poor.episode_returns().mean())},
        "iql_scratch": run("iql", iql.Config(), poor, args, workdir, "scratch"),
    }
    print("scratch", out["iql_scratch"], flush=True)
    config = iql.Config(value_init=str(path))
    out["iql_value_pretrained"] = run("iql", config, poor, args, workdir, "pretrained")
    print("pretrained", out["iql_value_pretrained"], flush=True)
    value_only = iql.Config(value_init=str(path), value_init_encoders=False)
    out["iql_value_only"] = run("iql", value_only, poor, args, workdir, "value-only")
    print("value only", out["iql_value_only"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument("--queries", type=int, nargs="*", default=[100, 300, 1000])
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--only",
        choices=("preferences", "actions", "progress", "pretraining"),
        default="preferences",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    dataset = load_dataset("suite:pendulum-mixed")
    iql_config = iql.Config(hidden_dims=(128, 128))
    held_out = prefs.scripted_preferences(dataset, 1000, 50, seed=99)
    output = pathlib.Path(args.output)
    sections = {"progress": progress_section, "pretraining": pretraining_section}
    if args.only in sections:
        results = json.loads(output.read_text()) if output.exists() else {}
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            results[args.only] = sections[args.only](args, pathlib.Path(tmp))
            results[args.only]["seconds"] = time.perf_counter() - began
            results[args.only]["settings"] = vars(args)
        output.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results[args.only], indent=1))
        return
    if args.only == "actions":
        results = json.loads(output.read_text()) if output.exists() else {}
        with tempfile.TemporaryDirectory() as tmp:
            started_actions = time.perf_counter()
            results["actions"] = actions_section(dataset, args, pathlib.Path(tmp))
            results["actions"]["seconds"] = time.perf_counter() - started_actions
        output.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results["actions"], indent=1))
        return
    results = {"settings": vars(args), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        results["runs"]["bc"] = run(
            "bc", bc.Config(hidden_dims=(128, 128)), dataset, args, workdir, "bc"
        )
        results["runs"]["iql_true_rewards"] = run("iql", iql_config, dataset, args, workdir, "true")
        for queries in args.queries:
            for flip in (0.0, 0.2):
                labeled = prefs.scripted_preferences(dataset, queries, 50, flip=flip, seed=0)
                fitted = time.perf_counter()
                reward, diagnostics = prefs.fit_reward_model(dataset, labeled)
                fit_seconds = time.perf_counter() - fitted
                relabeled = prefs.relabel(dataset, reward)
                name = f"iql_{queries}_preferences_flip_{flip}"
                results["runs"][name] = {
                    **run("iql", iql_config, relabeled, args, workdir, name),
                    "reward_fit_seconds": fit_seconds,
                    "held_out_preference_accuracy": prefs.preference_accuracy(
                        reward, dataset, held_out
                    ),
                    "reward_correlation": float(
                        np.corrcoef(np.asarray(relabeled.rewards), np.asarray(dataset.rewards))[
                            0, 1
                        ]
                    ),
                    **diagnostics,
                }
                print(name, json.dumps(results["runs"][name]), flush=True)
    results["seconds"] = time.perf_counter() - started
    pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.output).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
