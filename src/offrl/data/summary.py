"""A dataset summary: sizes, returns, lengths and action statistics (rich tables)."""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import LABEL_FIXES, Dataset


def summarize(dataset: Dataset) -> dict:
    host = dataset.to_numpy()
    missing = host.missing_fields()
    # Without rewards the return statistics are NaN; without actions, the action ones.
    returns = (
        host.episode_returns() if host.rewards is not None else np.full(host.num_episodes, np.nan)
    )
    lengths = np.asarray(host.episode_lengths)
    actions = (
        np.asarray(host.actions) if host.actions is not None else np.zeros((0, host.action_dim))
    )
    out = {
        "name": host.info.name,
        "env_id": host.info.env_id,
        "transitions": host.size,
        "episodes": host.num_episodes,
        "observation_dim": host.observation_dim,
        "action_dim": host.action_dim,
        "terminations": int(np.asarray(host.terminations).sum()),
        "truncations": int(np.asarray(host.truncations).sum()),
        "return": {
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "min": float(returns.min()),
            "max": float(returns.max()),
        },
        "length": {
            "mean": float(lengths.mean()),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
        },
        "action_mean": actions.mean(axis=0).tolist() if len(actions) else [],
        "action_std": actions.std(axis=0).tolist() if len(actions) else [],
        "action_min": actions.min(axis=0).tolist() if len(actions) else [],
        "action_max": actions.max(axis=0).tolist() if len(actions) else [],
        "missing": {name: LABEL_FIXES[name] for name in missing},
        "has_costs": host.costs is not None,
        "has_margins": host.margins is not None,
    }
    if host.margins is not None or host.costs is not None:
        out["safety"] = safety_summary(host)
    from offrl.envs.registry import normalized_score

    if host.info.subsets:
        lengths = np.asarray(host.episode_lengths)
        out["subsets"] = {
            name: {
                "episodes": len(ids),
                "transitions": int(lengths[list(ids)].sum()),
                "return_mean": float(returns[list(ids)].mean()) if ids else float("nan"),
            }
            for name, ids in host.info.subsets
        }
        for name, ids in host.info.subsets:
            subset_score = normalized_score(returns[list(ids)], host.info.env_id) if ids else None
            if subset_score is not None and host.rewards is not None:
                out["subsets"][name]["normalized_return_mean"] = float(np.mean(subset_score))
    if host.weights is not None:
        weights = np.asarray(host.weights)
        out["weights"] = {"mean": float(weights.mean()), "zero": int((weights == 0).sum())}
    score = normalized_score(returns, host.info.env_id) if host.rewards is not None else None
    if score is not None:
        out["normalized_return_mean"] = float(np.mean(score))
    return out


def print_summary(dataset: Dataset, console=None) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    summary = summarize(dataset)
    table = Table(
        title=f"dataset {summary['name']} ({summary['env_id'] or 'unknown env'})", show_header=False
    )
    for key in (
        "transitions",
        "episodes",
        "observation_dim",
        "action_dim",
        "terminations",
        "truncations",
    ):
        table.add_row(key, str(summary[key]))
    r = summary["return"]
    if "rewards" not in summary["missing"]:
        table.add_row(
            "episode return",
            f"{r['mean']:.1f} ± {r['std']:.1f} (min {r['min']:.1f}, max {r['max']:.1f})",
        )
    for name, fix in summary["missing"].items():
        table.add_row(f"[yellow]no {name}[/]", fix)
    if "normalized_return_mean" in summary:
        table.add_row("normalized return", f"{summary['normalized_return_mean']:.1f}")
    length = summary["length"]
    table.add_row(
        "episode length", f"{length['mean']:.1f} (min {length['min']}, max {length['max']})"
    )
    if "budget" in summary.get("safety", {}):
        safety = summary["safety"]
        table.add_row(
            "episode cost",
            f"{safety['cost_per_episode']:.3g} against a budget of {safety['budget']:.3g}; "
            f"{100 * safety['episodes_within_budget']:.1f}% of episodes within it",
        )
    elif "safety" in summary:
        safety = summary["safety"]
        table.add_row(
            "violations",
            f"{100 * safety['violation_rate']:.2f}% of steps, "
            f"{100 * safety['episodes_with_violation']:.1f}% of episodes",
        )
        if "margin" in safety:
            table.add_row(
                "safety margin h",
                f"min {safety['margin']['min']:.3g}, max {safety['margin']['max']:.3g}",
            )
    for name, subset in summary.get("subsets", {}).items():
        table.add_row(
            f"subset '{name}'",
            f"{subset['episodes']} episodes, {subset['transitions']} transitions"
            + ("" if np.isnan(subset["return_mean"]) else f", return {subset['return_mean']:.1f}"),
        )
    console.print(table)
    if "actions" in summary["missing"]:
        return summary
    actions = Table(title="actions")
    for column in ("dim", "mean", "std", "min", "max"):
        actions.add_column(column)
    for i in range(summary["action_dim"]):
        actions.add_row(
            str(i),
            *(
                f"{summary[k][i]:.3f}"
                for k in ("action_mean", "action_std", "action_min", "action_max")
            ),
        )
    console.print(actions)
    return summary


def safety_summary(dataset: Dataset) -> dict:
    """Violation statistics: the share of steps whose state has ``h < 0`` (or, without
    margins, a positive cost), the share of episodes with any, and the margin's range.
    On a task whose costs count against an episode budget (a global constraint,
    :attr:`offrl.envs.registry.Task.cost_budget`) and that has no margins: the mean
    episode cost, the budget and the share of episodes within it."""
    from offrl.envs.registry import get_task

    host = dataset.to_numpy()
    task = get_task(host.info.env_id)
    if host.margins is None and task is not None and task.cost_budget is not None:
        starts = np.asarray(host.episode_starts)
        per_episode = np.add.reduceat(np.asarray(host.costs, np.float64), starts)
        return {
            "cost_per_episode": float(per_episode.mean()),
            "budget": task.cost_budget,
            "episodes_within_budget": float(np.mean(per_episode <= task.cost_budget)),
        }
    violating = (
        np.asarray(host.margins) < 0 if host.margins is not None else np.asarray(host.costs) > 0
    )
    starts = np.asarray(host.episode_starts)
    per_episode = np.add.reduceat(violating.astype(np.int64), starts) if starts.size else []
    out = {
        "violation_rate": float(violating.mean()),
        "episodes_with_violation": float(np.mean(np.asarray(per_episode) > 0)),
    }
    if host.costs is not None:
        out["cost_per_episode"] = float(np.asarray(host.costs).sum() / max(host.num_episodes, 1))
    if host.margins is not None:
        margins = np.asarray(host.margins)
        out["margin"] = {"min": float(margins.min()), "max": float(margins.max())}
    return out
