"""Offline checkpoint selection: which checkpoint to deploy, from the data alone.

:func:`analyze_run` reads a run directory and its dataset and computes, for
every checkpoint and seed, the signals a selector can use without an
environment:

``fqe``         the FQE estimate of the policy's discounted value from the
                dataset's start states (:mod:`offrl.evaluate.fqe`);
``q_peak``      the run's own average dataset Q-value ``E_D[Q(s, a)]``: Kumar
                et al.'s workflow deploys the checkpoint at its peak;
``critic``      the run's own critic's value of its policy at the start states
                (the naive estimate; known to be optimistic);
``validation``  minus the policy's squared action error on held-out episodes
                (on the training data when the run kept none) -- the
                validation-loss rule robomimic's study found poor;
``amq``         Uni-O4's AM-Q: the behavior critic's mean value along the policy's
                rollouts in a learned dynamics ensemble
                (:mod:`offrl.evaluate.model_ope`; only with ``model_ope``);
``model_value`` the same rollouts' discounted model return plus the critic's tail
                (only with ``model_ope``);
``last``        the final checkpoint (the baseline every selector must beat).

plus the TD error (Bellman residual of the run's critic under its policy)
for the diagnostics. Where the run logged evaluations at the checkpoint steps,
the true returns are attached, so :func:`rank_selectors` can say how well each
selector ranks the checkpoints (Spearman) and what choosing by it costs (regret
against the best, in normalized points when the task has references).

Everything is cached in ``RUN_DIR/offline/analysis.json``, keyed by the
dataset's digest and the FQE settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from offrl.core.trainer import build_policy
from offrl.data.dataset import Dataset, split_by_episode
from offrl.data.preprocess import apply_preprocessor
from offrl.evaluate import model_ope as mope
from offrl.evaluate.diagnostics import diagnose
from offrl.evaluate.fqe import FQEConfig, fqe, policy_actions
from offrl.evaluate.statistics import spearman
from offrl.run import checkpoint
from offrl.run.loggers import read_jsonl
from offrl.run.rundir import (
    evaluations_from_metrics,
    load_run,
    read_run_config,
    write_json_atomic,
)
from offrl.run.settings import RunError

SELECTORS: dict[str, str] = {
    "fqe": "highest FQE estimate of the policy's value",
    "q_peak": "peak of the run's own average dataset Q (the offline RL workflow)",
    "critic": "highest value the run's own critic gives its policy at the start states",
    "validation": "lowest action error on held-out episodes",
    "amq": "highest AM-Q: behavior critic along the policy's model rollouts (Uni-O4)",
    "model_value": "highest discounted return of the policy's model rollouts",
    "last": "the final checkpoint",
}
#: Selectors whose scores compare across runs (the others are per-run signals).
COMPARABLE_ACROSS_RUNS = ("fqe", "validation", "amq", "model_value")


_KEY = jax.random.PRNGKey(0)  # deterministic actions ignore it


def has_critic(state) -> bool:
    """Whether an algorithm's state carries a ``critic`` giving ``[E, B]`` Q-values."""
    return hasattr(state, "critic")


def _critic_min(state, observations, actions):
    return state.critic.apply_fn(state.critic.params, observations, actions).min(axis=0)


def _signals_fn(algo, config, discount: float, with_critic: bool):
    """Jitted per-seed signals of one checkpoint, vmapped over seeds."""

    def one_seed(state, sample, valid, start_obs):
        def act(observations):
            return jnp.clip(algo.act(state, observations, _KEY, True, config), -1, 1)

        policy_next = act(sample["next_observations"])
        valid_actions = act(valid["observations"])
        out = {"action_mse": jnp.mean((valid_actions - valid["actions"]) ** 2)}
        if with_critic:
            q = _critic_min(state, sample["observations"], sample["actions"])
            next_q = _critic_min(state, sample["next_observations"], policy_next)
            target = sample["rewards"] + discount * (1.0 - sample["terminations"]) * next_q
            start_actions = act(start_obs)
            out["q_data"] = q.mean()
            out["td_error"] = jnp.abs(q - target).mean()
            out["critic_value"] = _critic_min(state, start_obs, start_actions).mean()
        return out

    return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None)))


def _rows(dataset: Dataset, size: int, seed: int) -> dict[str, jax.Array]:
    host = dataset.to_numpy()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(host.size, size=min(size, host.size), replace=False))
    return {
        "observations": jnp.asarray(host.observations[idx]),
        "actions": jnp.asarray(host.actions[idx]),
        "rewards": jnp.asarray(host.rewards[idx]),
        "next_observations": jnp.asarray(host.next_observations[idx]),
        "terminations": jnp.asarray(np.asarray(host.terminations[idx], np.float32)),
    }


def load_run_dataset(run_dir: str | os.PathLike, dataset=None) -> Dataset:
    """The dataset a run was trained on (from its config.json), loaded the way training
    loaded it; ``dataset`` (a Dataset or a spec) overrides it but must have the same
    SHA-256."""
    from offrl.data.loading import load_dataset

    run_dir = pathlib.Path(run_dir)
    saved = json.loads((run_dir / "config.json").read_text())

    data = dataset
    if data is None:
        spec = saved.get("dataset")
        if not spec:
            raise RunError(f"{run_dir}/config.json names no dataset; pass --dataset")
        data = load_dataset(spec, env_id=saved.get("env_id"))
    elif isinstance(data, str | os.PathLike):
        data = load_dataset(data, env_id=saved.get("env_id"))
    expected = saved.get("dataset_sha256")
    if expected and data.digest() != expected:
        raise RunError(
            f"the dataset given for {run_dir} is not the one it was trained on "
            f"(SHA-256 {data.digest()[:12]}... != {expected[:12]}...); offline estimates "
            "must use the training data or a held-out part of the same log. Pass the "
            "training dataset with --dataset"
        )
    filter_key = (saved.get("train_config") or {}).get("filter_key")
    return data.subset(filter_key) if filter_key else data


def analyze_run(
    run_dir: str | os.PathLike,
    dataset: Dataset | str | None = None,
    fqe_config: FQEConfig | None = None,
    steps: list[int] | None = None,
    sample_size: int = 10_000,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
    model_ope: mope.ModelOPEConfig | None = None,
    fitted_models: dict | None = None,
) -> dict:
    """Per-checkpoint, per-seed offline signals of a run (see the module docstring).

    With ``model_ope`` a dynamics ensemble and a behavior critic are fit to the
    dataset once (reused from ``fitted_models``, a dict the caller keeps, for runs on
    the same data) and every checkpoint is also scored by ``amq`` and ``model_value``.

    Returns a JSON-able dict: ``steps [C]``, ``seeds [S]``, ``signals`` (name ->
    ``[C][S]``; ``None`` where unavailable), ``fqe_low``/``fqe_high``, the
    diagnostics per seed, the logged true returns where present, and the
    dataset's behavior value. The FQE fits run once for every checkpoint and
    seed together (``fqe_config.bootstrap`` resamples each).
    """
    run_dir = pathlib.Path(run_dir)
    saved = read_run_config(run_dir)
    if saved["kind"] == "online":
        raise RunError(
            f"{run_dir} is an online run; offline analysis needs the dataset a run was "
            "trained on (use an `offrl train` run)"
        )
    fqe_config = fqe_config or FQEConfig()
    available = checkpoint.steps(run_dir / "checkpoints")
    if not available:
        raise RunError(f"{run_dir} has no checkpoints to analyze")
    steps = sorted(steps or available)
    missing = sorted(set(steps) - set(available))
    if missing:
        raise RunError(f"{run_dir} has no checkpoints at steps {missing}; available: {available}")
    data = load_run_dataset(run_dir, dataset)
    key = json.loads(  # as it reads back from the cache (tuples become lists)
        json.dumps(
            {
                "dataset_sha256": data.digest(),
                "fqe": dataclasses.asdict(fqe_config),
                "steps": steps,
                "sample_size": sample_size,
                **({"model_ope": dataclasses.asdict(model_ope)} if model_ope else {}),
            }
        )
    )
    cache_path = run_dir / "offline" / "analysis.json"
    if use_cache and cache_path.is_file():
        cached = json.loads(cache_path.read_text())
        if cached.get("key") == key:
            return cached
    say = progress or (lambda message: None)

    context = load_run(run_dir, steps[-1])
    algo, pre = context.algo, context.preprocessor
    seeds = list(context.seeds)
    discount = float(getattr(context.algo_config, "discount", fqe_config.discount))
    fraction = getattr(context.settings, "validation_fraction", 0.0)
    validation_key = getattr(context.settings, "validation_key", None)
    if validation_key and validation_key in dict(data.info.subsets):
        held_out_name = f"validation subset '{validation_key}'"
        valid_data = data.select_episodes(data.subset_episodes(validation_key))
    elif fraction > 0:
        held_out_name = "held-out episodes"
        valid_data = split_by_episode(data, fraction, seed=0)[1]
    else:
        held_out_name = "training data (no held-out split)"
        valid_data = data
    pre_data = apply_preprocessor(data, pre)
    sample = _rows(pre_data, sample_size, seed=0)
    valid = _rows(apply_preprocessor(valid_data, pre), sample_size, seed=1)
    starts = np.asarray(data.episode_starts)
    start_obs_env = np.asarray(data.observations)[starts].astype(np.float32)
    start_obs = jnp.asarray(pre.observation(start_obs_env))
    rewards = np.asarray(pre_data.rewards)
    q_bound = float(np.abs(rewards).max() / (1.0 - discount)) if rewards.size else None
    with_critic = has_critic(context.states)
    signals_fn = _signals_fn(algo, context.algo_config, discount, with_critic)
    act = build_policy(algo, context.algo_config)
    num_seeds = len(seeds)
    next_obs_env = np.asarray(data.next_observations, np.float32)

    fitted = None
    if model_ope is not None:
        if getattr(act, "window_length", None) is not None:
            raise RunError(
                f"{run_dir} holds a policy over histories ({saved.get('algorithm')}); "
                "model-based OPE rolls out single-step policies only: leave out --model-ope"
            )
        memo = {} if fitted_models is None else fitted_models
        memo_key = (data.digest(), model_ope, saved.get("env_id"))
        if memo_key not in memo:
            try:
                memo[memo_key] = mope.fit(data, model_ope, saved.get("env_id"), progress=say)
            except ValueError as error:
                raise RunError(f"model-based OPE for {run_dir}: {error}") from None
        fitted = memo[memo_key]

    per_step: list[dict] = []
    next_actions, start_actions = [], []
    for i, step in enumerate(steps):
        say(f"checkpoint {step} ({i + 1}/{len(steps)})")
        ctx = context if step == context.step else load_run(run_dir, step)
        values = signals_fn(ctx.states, sample, valid, start_obs)
        per_step.append({k: np.asarray(v, np.float64) for k, v in values.items()})
        if fitted is not None:
            scores = mope.evaluate(fitted, act, (ctx.states, pre), num_seeds)
            per_step[-1].update({f"mope_{k}": v for k, v in scores.items()})

        def policy(observations, ctx=ctx):
            batch = jnp.broadcast_to(
                jnp.asarray(observations), (num_seeds, *np.shape(observations))
            )
            return np.asarray(act(ctx.states, pre, batch, jax.random.PRNGKey(0)))

        acts_next = policy_actions(lambda o: policy(o).transpose(1, 0, 2), next_obs_env)
        acts_start = policy_actions(lambda o: policy(o).transpose(1, 0, 2), start_obs_env)
        next_actions.extend(acts_next.transpose(1, 0, 2))  # [S, N, A]
        start_actions.extend(acts_start.transpose(1, 0, 2))
    fits = fqe_config.fits_per_policy(len(next_actions))
    say(
        f"FQE: {len(next_actions)} policies x {max(fits, 1)} fit(s) "
        f"({'bootstrap resamples' if fits else 'the full data'}), at most "
        f"{fqe_config.updates} updates each"
        + ("" if fqe_config.tolerance is None else ", stopping once the estimates settle")
    )
    estimate = fqe(
        data,
        config=fqe_config,
        next_actions=np.stack(next_actions),
        start_actions=np.stack(start_actions),
        progress=remaining_time(say, "FQE"),
    )
    shape = (len(steps), num_seeds)

    def table(name):
        if name not in per_step[0]:
            return None
        return np.stack([p[name] for p in per_step]).reshape(shape)

    signals = {
        "fqe": estimate.value.reshape(shape),
        "q_peak": table("q_data"),
        "critic": table("critic_value"),
        "validation": -table("action_mse"),
        "amq": table("mope_amq"),
        "model_value": table("mope_model_value"),
        "last": np.broadcast_to(np.arange(len(steps), dtype=np.float64)[:, None], shape),
    }
    td = table("td_error")
    diagnostics = []
    for s in range(num_seeds):
        verdicts = diagnose(
            steps,
            None if signals["q_peak"] is None else signals["q_peak"][:, s],
            None if td is None else td[:, s],
            q_bound=q_bound,
        )
        diagnostics.append([v.as_dict() for v in verdicts])

    from offrl.envs.registry import normalized_value

    env_id = saved.get("env_id")
    # The evaluations training logged (the same reader resume uses), by step.
    logged = {e["step"]: e for e in evaluations_from_metrics(_metrics(run_dir / "metrics.jsonl"))}
    true_return = [logged[s]["return_per_seed"] if s in logged else None for s in steps]
    true_normalized = [logged[s].get("normalized_per_seed") if s in logged else None for s in steps]

    def normalized(values):
        out = normalized_value(values, env_id, estimate.discount)
        return None if out is None else np.asarray(out).reshape(shape).tolist()

    out = {
        "key": key,
        "run_dir": str(run_dir),
        "algorithm": saved.get("algorithm"),
        "dataset": saved.get("dataset"),
        "env_id": env_id,
        "steps": steps,
        "seeds": seeds,
        "discount": estimate.discount,
        "behavior_value": estimate.behavior_value,
        "behavior_normalized": _maybe_float(
            normalized_value(estimate.behavior_value, env_id, estimate.discount)
        ),
        "validation_source": held_out_name,
        "q_bound": q_bound,
        "signals": {k: None if v is None else np.asarray(v).tolist() for k, v in signals.items()},
        "td_error": None if td is None else td.tolist(),
        "action_mse": table("action_mse").tolist(),
        "fqe_low": estimate.low.reshape(shape).tolist(),
        "fqe_high": estimate.high.reshape(shape).tolist(),
        "fqe_fits": estimate.fits.reshape(*shape, -1).tolist(),
        "fqe_normalized": normalized(estimate.value),
        "fqe_low_normalized": normalized(estimate.low),
        "fqe_high_normalized": normalized(estimate.high),
        "fqe_confidence": fqe_config.confidence,
        "fqe_fits_per_policy": max(fits, 1),
        "fqe_updates_run": estimate.updates,
        "diagnostics": diagnostics,
        "model_ope": None
        if fitted is None
        else {
            "alive_steps": table("mope_alive_steps").tolist(),
            "model_return": table("mope_model_return").tolist(),
            "horizon": model_ope.horizon,
            "starts": model_ope.starts,
            "fit": fitted.summary,
        },
        "true_return": true_return,
        "true_normalized": true_normalized,
    }
    cache_path.parent.mkdir(exist_ok=True)
    write_json_atomic(cache_path, out)
    return out


def remaining_time(say: Callable[[str], None], what: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` that says the work done and the time left at most
    (fits may stop before ``total`` once their estimates settle)."""
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        left = elapsed / max(done, 1) * (total - done)
        say(f"{what} {done}/{total} updates, {elapsed:.0f} s so far, at most {left:.0f} s left")

    return progress


def _maybe_float(value):
    return None if value is None else float(value)


def nan_table(values) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(
        [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
    )


def true_table(analysis: dict) -> tuple[np.ndarray | None, str]:
    """The true scores ``[C, S]`` (normalized when available, else returns), NaN where
    a checkpoint was not evaluated."""
    for name, label in (("true_normalized", "normalized score"), ("true_return", "return")):
        rows = analysis.get(name)
        if rows and any(r is not None for r in rows):
            width = len(analysis["seeds"])
            table = np.asarray(
                [[np.nan] * width if r is None else r for r in rows], dtype=np.float64
            )
            return table, label
    return None, ""


def choose(analysis: dict, selector: str, seed_index: int | None = None) -> tuple[int, int]:
    """``(checkpoint_index, seed_index)`` the selector picks (over all seeds when
    ``seed_index`` is None)."""
    scores = nan_table(analysis["signals"].get(selector))
    if scores is None:
        raise ValueError(f"selector '{selector}' has no signal for this run")
    if seed_index is not None:
        column = scores[:, seed_index]
        return int(np.nanargmax(column)), seed_index
    flat = int(np.nanargmax(scores))
    return divmod(flat, scores.shape[1])


def rank_selectors(analysis: dict) -> dict:
    """Per selector: mean Spearman correlation with the true scores over a seed's
    checkpoints, and the mean regret (best true score minus the chosen one's)."""
    truth, label = true_table(analysis)
    out = {"score": label, "selectors": {}}
    if truth is None:
        return out
    for name in SELECTORS:
        scores = nan_table(analysis["signals"].get(name))
        if scores is None:
            continue
        correlations, regrets = [], []
        for s in range(truth.shape[1]):
            ok = np.isfinite(truth[:, s]) & np.isfinite(scores[:, s])
            if ok.sum() < 2:
                continue
            t, x = truth[ok, s], scores[ok, s]
            correlations.append(spearman(x, t))
            regrets.append(float(t.max() - t[int(np.argmax(x))]))
        if regrets:
            out["selectors"][name] = {
                "spearman": float(np.nanmean(correlations)),
                "regret": float(np.mean(regrets)),
                "seeds": len(regrets),
            }
    return out


def pooled_ranking(analyses: list[dict], selectors=COMPARABLE_ACROSS_RUNS) -> dict:
    """Spearman and regret over every (run, checkpoint, seed) candidate at once: the
    question "which of all these trained policies should I deploy?"."""
    out = {}
    for name in selectors:
        xs, ts = [], []
        for analysis in analyses:
            truth, _ = true_table(analysis)
            scores = nan_table(analysis["signals"].get(name))
            if truth is None or scores is None:
                continue
            ok = np.isfinite(truth) & np.isfinite(scores)
            xs.append(scores[ok])
            ts.append(truth[ok])
        if not xs:
            continue
        x, t = np.concatenate(xs), np.concatenate(ts)
        if len(x) >= 2:
            out[name] = {
                "spearman": spearman(x, t),
                "regret": float(t.max() - t[int(np.argmax(x))]),
                "candidates": int(len(x)),
            }
    return out


def _metrics(path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []
