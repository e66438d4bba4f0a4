"""Benchmark dataset recipes, built on demand into a local cache.

The cache is ``$OFFRL_DATA_DIR`` or ``~/.cache/offrl/datasets``; each dataset
is a Minari dataset directory there. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import time

import numpy as np

from offrl.data.dataset import Dataset


def cache_dir() -> pathlib.Path:
    env = os.environ.get("OFFRL_DATA_DIR")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "offrl" / "datasets"


def recipe_modules() -> tuple:
    """The modules holding the suite's recipes (each a ``RECIPES`` dict and ``build``)."""
    from offrl.suites import (
        curation,
        industrial,
        locomotion,
        manipulation,
        maze,
        meta,
        pendulum,
        safety,
    )

    return (pendulum, curation, maze, locomotion, safety, industrial, manipulation, meta)


def available() -> list[str]:
    return [name for module in recipe_modules() for name in module.RECIPES]


def missing_behavior(name: str) -> str | None:
    """Why recipe ``name`` cannot be built in this installation, or ``None``.

    Locomotion levels other than ``random`` need the shipped behavior files of
    their task (:mod:`offrl.suites.behavior`).
    """
    from offrl.suites import industrial, locomotion, safety
    from offrl.suites.behavior import BehaviorError, behavior_dir, read_manifest

    for part in industrial.RECIPES.get(name, {}).get("behaviors", []):
        level = part.get("level")
        if level and not (behavior_dir("hopper") / f"{level}.npz").is_file():
            return f"{level}.npz is not shipped for hopper"
    for part in safety.RECIPES.get(name, {}).get("locomotion_parts", []):
        reason = missing_behavior(part)
        if reason:
            return reason
    recipe = locomotion.RECIPES.get(name)
    if recipe is None or recipe["level"] == "random":
        return None
    try:
        read_manifest(recipe["task"])
    except BehaviorError:
        return f"no behavior policies shipped for {recipe['task']}"
    parts = recipe.get("parts", [])
    for part in parts:
        reason = missing_behavior(part)
        if reason:
            return reason
    file = recipe.get("policy") or recipe.get("action_log")
    if file and not (behavior_dir(recipe["task"]) / file).is_file():
        return f"{file} is not shipped for {recipe['task']}"
    return None


def _recipe_module(name: str):
    for module in recipe_modules():
        if name in module.RECIPES:
            return module
    raise KeyError(name)


def build_suite_dataset(name: str, force: bool = False) -> pathlib.Path:
    """Build recipe ``name`` into the cache (a Minari dataset); returns its path."""
    from offrl.data.formats.minari import write_minari

    if name not in available():
        raise KeyError(f"unknown suite dataset '{name}'; available: {', '.join(available())}")
    path = cache_dir() / name
    if path.exists() and not force:
        return path
    module = _recipe_module(name)
    started = time.perf_counter()
    dataset = module.build(name)
    seconds = time.perf_counter() - started
    write_minari(
        dataset,
        path,
        dataset_id=name,
        overwrite=True,
        metadata={
            "description": module.__doc__.splitlines()[0],
            "algorithm_name": module.__name__,
        },
    )
    card = dataset_card(
        dataset,
        recipe=module.RECIPES[name],
        policy=module.behavior(name) if hasattr(module, "behavior") else module.BEHAVIOR,
        build_seconds=seconds,
        command=f"offrl suite build {name}",
    )
    write_card(path, card)
    return path


def load_suite_dataset(name: str) -> Dataset:
    """A built-in dataset; ``NAME@novel`` is NAME with the velocities of its
    observations hidden, for the task ``ENV@novel`` (:mod:`offrl.envs.partial`)."""
    from offrl.data.formats.minari import read_minari
    from offrl.data.validate import DatasetError

    base, at, modifier = name.partition("@")
    if at:
        if modifier != "novel":
            raise DatasetError(
                f"suite:{name}: a suite dataset takes only @novel (velocities hidden); "
                f"'{modifier}' changes what the data would have been, so it needs new data",
                field="dataset",
                fix=f"use suite:{base} or suite:{base}@novel",
            )
        return without_velocities(load_suite_dataset(base), name)
    if name not in available():
        raise DatasetError(
            f"unknown suite dataset 'suite:{name}'",
            field="dataset",
            fix=f"choose one of {', '.join(available())} (offrl suite list)",
        )
    dataset = read_minari(build_suite_dataset(name))
    # The cache directory stays the data's location: named subsets are written there.
    info = dataclasses.replace(
        dataset.info, name=name, source=f"suite:{name}", path=dataset.info.source
    )
    return dataset.replace(info=info)


def without_velocities(dataset: Dataset, name: str) -> Dataset:
    """``dataset`` as logged in ``ENV@novel``: the same steps, velocities hidden."""
    from offrl.envs.partial import hide_velocities

    env_id = dataset.info.env_id
    info = dataclasses.replace(
        dataset.info, name=name, source=f"suite:{name}", path="", env_id=f"{env_id}@novel"
    )
    return dataset.replace(
        observations=hide_velocities(np.asarray(dataset.observations), env_id),
        next_observations=hide_velocities(np.asarray(dataset.next_observations), env_id),
        info=info,
    )


def array_digest(dataset: Dataset) -> str:
    """SHA-256 over every per-step array (:meth:`Dataset.digest`)."""
    return dataset.digest()


def dataset_card(dataset: Dataset, recipe, policy: str, build_seconds: float, command: str) -> dict:
    """Sizes, return statistics, the behavior, seeds, versions and the command."""
    import gymnasium
    import minari
    import mujoco

    from offrl import __version__
    from offrl.data.summary import summarize

    summary = summarize(dataset)
    return {
        "name": dataset.info.name,
        "env_id": dataset.info.env_id,
        "transitions": summary["transitions"],
        "episodes": summary["episodes"],
        "terminations": summary["terminations"],
        "truncations": summary["truncations"],
        "return": summary["return"],
        "normalized_return_mean": summary.get("normalized_return_mean"),
        "episode_length": summary["length"],
        **({"safety": summary["safety"]} if "safety" in summary else {}),
        **({"subsets": summary["subsets"]} if "subsets" in summary else {}),
        "behavior": policy,
        "recipe": recipe,
        "array_sha256": array_digest(dataset),
        "build_seconds": round(build_seconds, 2),
        "command": command,
        "versions": {
            "offrl": __version__,
            "gymnasium": gymnasium.__version__,
            "minari": minari.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "built": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write_card(path: pathlib.Path, card: dict) -> None:
    """``card.json`` and a readable ``card.md`` beside the dataset's ``data/``."""
    (path / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    r = card["return"]
    lines = [
        f"# Dataset card: {card['name']}",
        "",
        f"- environment: {card['env_id']}",
        f"- transitions: {card['transitions']} in {card['episodes']} episodes "
        f"({card['terminations']} terminated, {card['truncations']} truncated)",
        f"- episode return: {r['mean']:.1f} ± {r['std']:.1f} (min {r['min']:.1f}, "
        f"max {r['max']:.1f})",
    ]
    if card.get("normalized_return_mean") is not None:
        lines.append(f"- normalized return (mean): {card['normalized_return_mean']:.1f}")
    if card.get("safety") and "budget" in card["safety"]:
        safety = card["safety"]
        lines.append(
            f"- cost (a global constraint): {safety['cost_per_episode']:.3g} per episode "
            f"against a budget of {safety['budget']:.3g}, "
            f"{100 * safety['episodes_within_budget']:.1f}% of episodes within it"
        )
    elif card.get("safety"):
        safety = card["safety"]
        lines.append(
            f"- safety: {100 * safety['violation_rate']:.2f}% of steps violate (h < 0), "
            f"{100 * safety['episodes_with_violation']:.1f}% of episodes have a violation"
            + (
                f"; margin h from {safety['margin']['min']:.3g} to {safety['margin']['max']:.3g}"
                if "margin" in safety
                else ""
            )
        )
    for subset, stats in card.get("subsets", {}).items():
        score = stats.get("normalized_return_mean")
        lines.append(
            f"- subset `{subset}`: {stats['episodes']} episodes, {stats['transitions']} "
            f"transitions, return {stats['return_mean']:.1f}"
            + ("" if score is None else f" (normalized {score:.1f})")
        )
    lines += [
        f"- behavior: {card['behavior']}",
        f"- recipe: `{json.dumps(card['recipe'])}`",
        f"- arrays SHA-256: `{card['array_sha256']}`",
        f"- built by `{card['command']}` in {card['build_seconds']} s on {card['built']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in card['versions'].items())}",
    ]
    (path / "card.md").write_text("\n".join(lines) + "\n")


def read_card(name: str) -> str:
    if name not in available():  # also keeps paths such as ../x out of the cache
        raise FileNotFoundError(
            f"unknown suite dataset '{name}'; available: {', '.join(available())}"
        )
    path = cache_dir() / name / "card.md"
    if not path.exists():
        raise FileNotFoundError(f"no card for '{name}': build it first (offrl suite build {name})")
    return path.read_text()
