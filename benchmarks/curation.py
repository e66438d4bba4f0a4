"""Do the quality scores find the good data, and does BC on it do better?

On the curation test beds (:mod:`offrl.suites.curation`):

1. ``pendulum-operators`` and ``pointmaze-operators`` (six scripted operators, two
   each better/okay/worse):
   every quality score's per-operator mean against the known level (Spearman over the
   six operators, levels 1/2/3) and against the held-out score of BC trained on that
   operator's 20 episodes alone; then BC on all 120 episodes, on the top half by
   DemInf, on the top half of each operator, and on the ``better`` operators.
2. each mixture (``pendulum-noisy-mix``, ``pendulum-dynamics-mix``): how well each
   score separates the corrupted episodes (ROC AUC, 1 = perfect, 0.5 = chance), and
   BC on all 60 episodes (uniform), on the top half by DemInf (filtered), with
   DemInf weights (``exp(z)``, mean 1), with PTR's per-step weights, with OOD-IL's
   per-demonstration weights (against ``--feasible``, the imitator's own logs) and on
   its top half, and on the clean half alone.

3. Behavior Retrieval: ``--task-episodes`` (5) expert episodes as the task and
   ``suite:pendulum-mixed`` as the prior: BC on the task alone, on the task and the
   whole prior, and on the task and the top 10% / 25% of the prior transitions by
   latent similarity.

4. ``pendulum-takeover`` (a novice watched by a supervisor who takes over): BC on
   everything, with APO-style weights (corrections x2, the 15 policy steps before each
   takeover dropped), without the pre-takeover steps only, and on the corrections only.

5. Uncertainty-targeted corrections (:mod:`offrl.corrections`): from 1 expert episode,
   3 rounds of 200 expert labels at the states where a 5-member BC ensemble disagrees
   most, against 200 labels at random visited states (DAgger) and against 600 more
   steps of expert demonstrations.

6. ``pendulum-detour-mix`` (15 of 30 demonstrations hold a 25-step detour): EIL's
   detection of the detour steps (ROC AUC of the cycle error, precision, recall, F1 of
   its outlier rule), then BC on everything, without EIL's flagged steps, without the
   true detour steps, and on the 15 clean demonstrations.

BC: 128x128, ``--steps`` updates, seeds 0,1,2 in parallel; normalized score of the
final policy on ``--heldout`` held-out episodes per seed (reset seeds 900000000..,
nothing was chosen on them), mean and sample std over seeds.

    python benchmarks/curation.py --output benchmarks/results/curation-pendulum.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import tempfile
import time

import numpy as np

from offrl.algos import bc
from offrl.curate import apo, eil, oodil, ptr, retrieval
from offrl.curate.quality import SCORES, QualityConfig, assess, episode_means
from offrl.curate.select import episode_weights, keep
from offrl.data.dataset import concatenate
from offrl.data.loading import load_dataset
from offrl.data.weights import attach_weights
from offrl.evaluate.statistics import spearman
from offrl.run.settings import TrainConfig
from offrl.run.train import train
from offrl.suites.curation import OPERATORS


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties half (Mann-Whitney)."""
    scores = np.asarray(scores, np.float64)
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def train_bc(dataset, steps: int, heldout: int, workdir: pathlib.Path, name: str) -> dict:
    config = TrainConfig(
        steps=steps,
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=steps,
        seeds=(0, 1, 2),
        heldout_episodes=heldout,
        progress=False,
    )
    summary = train("bc", dataset, workdir / name, bc.Config(hidden_dims=(128, 128)), config)
    scores = [float(x) for x in summary["final_per_seed"]]
    return {
        "final_per_seed": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores, ddof=1)),
    }


def operators(args, workdir: pathlib.Path, name: str = "pendulum-operators") -> dict:
    dataset = load_dataset(f"suite:{name}")
    quality = assess(dataset, QualityConfig())
    subsets = dict(dataset.info.subsets)
    names = list(OPERATORS)
    level = np.asarray([("worse", "okay", "better").index(OPERATORS[n][0]) + 1 for n in names])
    per_operator_bc = {
        n: train_bc(dataset.subset(n), args.steps, args.heldout, workdir, n) for n in names
    }
    bc_score = np.asarray([per_operator_bc[n]["mean"] for n in names])
    ranking = {}
    for score, better in SCORES.items():
        if score not in quality["episodes"]:
            continue
        values = np.asarray(quality["episodes"][score])
        means = np.asarray([np.nanmean(values[list(subsets[n])]) for n in names])
        oriented = means if better is not False else -means
        ranking[score] = {
            "per_operator": dict(zip(names, means.tolist(), strict=True)),
            "spearman_vs_level": spearman(oriented, level),
            "spearman_vs_bc": spearman(oriented, bc_score),
        }
    groups = [subsets[n] for n in names]
    variants = {
        "all": dataset,
        "deminf_top_half": dataset.select_episodes(keep(quality, "deminf", top=0.5)),
        "deminf_top_half_per_operator": dataset.select_episodes(
            keep(quality, "deminf", top=0.5, groups=groups)
        ),
        "better_operators": dataset.subset("better"),
    }
    return {
        "level_order": dict(zip(names, level.tolist(), strict=True)),
        "bc_per_operator": per_operator_bc,
        "scores": ranking,
        "dataset_metrics": quality["dataset_metrics"],
        "bc": {
            k: train_bc(v, args.steps, args.heldout, workdir, f"{name}-{k}")
            for k, v in variants.items()
        },
    }


def mixture(name: str, args, workdir: pathlib.Path) -> dict:
    dataset = load_dataset(f"suite:{name}")
    quality = assess(dataset, QualityConfig())
    corrupted = np.zeros(dataset.num_episodes, bool)
    corrupted[list(dict(dataset.info.subsets)["corrupted"])] = True
    separation = {}
    for score, better in SCORES.items():
        if score not in quality["episodes"] or better is None:
            continue
        values = np.asarray(quality["episodes"][score])
        # AUC of "looks worse" for the corrupted episodes
        separation[score] = roc_auc(-values if better else values, corrupted)
    # PTR: per-step weights; OOD-IL: per-demonstration weights against the imitator's own
    # logs (the expert's episodes in the true dynamics cover the demonstrations' states)
    ptr_weights = ptr.weights(dataset)
    ptr_episode = episode_means(ptr_weights, dataset)
    oodil_episode, oodil_fit = oodil.episode_weights(dataset, load_dataset(args.feasible))
    separation["ptr"] = roc_auc(-ptr_episode, corrupted)
    separation["oodil"] = roc_auc(-oodil_episode, corrupted)
    by_weight = {"episodes": {"ptr": ptr_episode.tolist(), "oodil": oodil_episode.tolist()}}
    variants = {
        "uniform": dataset,
        "deminf_filtered_top_half": dataset.select_episodes(keep(quality, "deminf", top=0.5)),
        "deminf_weighted": attach_weights(dataset, episode_weights(quality, "deminf")),
        "ptr_weighted": attach_weights(dataset, ptr_weights),
        "oodil_weighted": attach_weights(dataset, oodil_episode),
        "oodil_filtered_top_half": dataset.select_episodes(
            keep(by_weight, "oodil", top=0.5, higher_is_better=True)
        ),
        "clean_only": dataset.subset("clean"),
    }
    kept = keep(quality, "deminf", top=0.5)
    return {
        "oodil_fit": oodil_fit,
        "mean_weight": {
            "ptr": {
                "clean": float(ptr_episode[~corrupted].mean()),
                "corrupted": float(ptr_episode[corrupted].mean()),
            },
            "oodil": {
                "clean": float(oodil_episode[~corrupted].mean()),
                "corrupted": float(oodil_episode[corrupted].mean()),
            },
        },
        "roc_auc_corrupted": separation,
        "deminf_top_half_clean_share": float(np.mean(~corrupted[kept])),
        "dataset_metrics": quality["dataset_metrics"],
        "bc": {
            k: train_bc(v, args.steps, args.heldout, workdir, f"{name}-{k}")
            for k, v in variants.items()
        },
    }


def behavior_retrieval(args, workdir: pathlib.Path) -> dict:
    """``--task-episodes`` expert episodes as the task, suite:pendulum-mixed as the prior."""
    task = load_dataset("suite:pendulum-expert").select_episodes(range(args.task_episodes))
    prior = load_dataset("suite:pendulum-mixed")
    rows_episode = np.repeat(np.arange(prior.num_episodes), np.asarray(prior.episode_lengths))
    out = {"bc": {}, "retrieved_from": {}}
    out["bc"]["task_only"] = train_bc(task, args.steps, args.heldout, workdir, "br-task")
    everything = concatenate([task, prior], task.info)
    out["bc"]["task_and_all_prior"] = train_bc(
        everything, args.steps, args.heldout, workdir, "br-all"
    )
    for fraction in (0.1, 0.25):
        joined, rows = retrieval.retrieve(prior, task, retrieval.Config(fraction=fraction))
        name = f"behavior_retrieval_{fraction}"
        out["bc"][name] = train_bc(joined, args.steps, args.heldout, workdir, name)
        # pendulum-mixed: episodes 0-29 noisy expert, 30-59 half random, 60-99 random
        source = rows_episode[rows]
        out["retrieved_from"][name] = {
            "noisy_expert": float(np.mean(source < 30)),
            "half_random": float(np.mean((source >= 30) & (source < 60))),
            "random": float(np.mean(source >= 60)),
        }
    return out


def takeover(args, workdir: pathlib.Path) -> dict:
    """suite:pendulum-takeover: BC uniform, with APO-style weights, on corrections only."""
    dataset = load_dataset("suite:pendulum-takeover")
    flags = np.asarray(dataset.interventions)
    variants = {
        "uniform": dataset,
        "apo_weighted": attach_weights(dataset, apo.weights(dataset)),
        "corrections_only": attach_weights(dataset, flags),
        "without_pre_takeover": attach_weights(
            dataset, apo.weights(dataset, apo.Config(correction_weight=1.0))
        ),
    }
    return {
        "intervention_share": float(flags.mean()),
        "undesirable_share": float(np.mean(apo.labels(dataset, 15) < 0)),
        "bc": {
            k: train_bc(v, args.steps, args.heldout, workdir, f"to-{k}")
            for k, v in variants.items()
        },
    }


def uncertainty_corrections(args, workdir: pathlib.Path) -> dict:
    """1 expert episode to start; 3 rounds of 200 expert labels each, at the states of
    most ensemble disagreement, at random visited states (DAgger), or as 600 more steps
    of expert demonstrations; then BC on each."""
    from offrl import corrections
    from offrl.suites.pendulum import SwingUpController

    start = load_dataset("suite:pendulum-expert").select_episodes(range(1))
    expert = SwingUpController()
    config = corrections.Config(rounds=3, budget=200, rollouts=5, members=5, steps=3000)
    out = {"bc": {}, "rounds": {}}
    out["bc"]["start_only"] = train_bc(start, args.steps, args.heldout, workdir, "uc-start")
    for select in ("uncertainty", "random"):
        data, records = corrections.collect(
            start, "Pendulum-v1", expert, dataclasses.replace(config, select=select), workdir
        )
        out["rounds"][select] = records
        out["bc"][f"{select}_labels"] = train_bc(data, args.steps, args.heldout, workdir, select)
    extra = corrections.extra_demonstrations(
        "Pendulum-v1", expert, config.rounds * config.budget, 600_000, start.info
    )
    out["bc"]["extra_demonstrations"] = train_bc(
        concatenate([start, extra], start.info), args.steps, args.heldout, workdir, "uc-extra"
    )
    return out


def detours(args, workdir: pathlib.Path) -> dict:
    """suite:pendulum-detour-mix: EIL's detection of the detour steps, then BC."""
    from offrl.suites.curation import detour_rows

    dataset = load_dataset("suite:pendulum-detour-mix")
    truth = detour_rows(dataset)
    scores, diagnostics = eil.cycle_errors(dataset)
    flagged = eil.extraneous(scores, eil.Config().outlier_mads)
    hits = int((flagged & truth).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / int(truth.sum())
    variants = {
        "uniform": dataset,
        "eil_filtered": attach_weights(dataset, np.where(flagged, 0.0, 1.0)),
        "true_detours_removed": attach_weights(dataset, np.where(truth, 0.0, 1.0)),
        "clean_demonstrations_only": dataset.subset("clean"),
    }
    return {
        "fit": diagnostics,
        "detour_share": float(truth.mean()),
        "flagged_share": float(flagged.mean()),
        "roc_auc_detour_steps": roc_auc(scores, truth),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "bc": {
            k: train_bc(v, args.steps, args.heldout, workdir, f"de-{k}")
            for k, v in variants.items()
        },
    }


SECTIONS = (
    "operators",
    "noisy-mix",
    "dynamics-mix",
    "retrieval",
    "takeover",
    "corrections",
    "maze-operators",
    "detours",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument("--output", required=True)
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--task-episodes", type=int, default=5, help="retrieval: task demos")
    parser.add_argument(
        "--feasible", default="suite:pendulum-expert", help="OOD-IL: the imitator's own logs"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        results = {
            "settings": {"steps": args.steps, "heldout_episodes": args.heldout, "seeds": [0, 1, 2]}
        }
        output = pathlib.Path(args.output)
        if output.exists():  # keep the sections not run this time
            results = {**json.loads(output.read_text()), **results}
        sections = {
            "operators": ("pendulum-operators", lambda: operators(args, workdir)),
            "noisy-mix": (
                "pendulum-noisy-mix",
                lambda: mixture("pendulum-noisy-mix", args, workdir),
            ),
            "dynamics-mix": (
                "pendulum-dynamics-mix",
                lambda: mixture("pendulum-dynamics-mix", args, workdir),
            ),
            "takeover": ("pendulum-takeover", lambda: takeover(args, workdir)),
            "detours": ("pendulum-detour-mix", lambda: detours(args, workdir)),
            "maze-operators": (
                "pointmaze-operators",
                lambda: operators(args, workdir, "pointmaze-operators"),
            ),
            "corrections": (
                "uncertainty-corrections",
                lambda: uncertainty_corrections(args, workdir),
            ),
            "retrieval": (
                f"behavior-retrieval-{args.task_episodes}-task-episodes",
                lambda: behavior_retrieval(args, workdir),
            ),
        }
        for name in args.only or SECTIONS:
            key, run = sections[name]
            results[key] = run()
    results.setdefault("seconds_per_run", {})[",".join(args.only or SECTIONS)] = (
        time.perf_counter() - started
    )
    results.pop("seconds", None)
    pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "settings"}, indent=1)[:6000])


if __name__ == "__main__":
    main()
