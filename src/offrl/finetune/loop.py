"""The interaction loop: online training and offline-to-online fine-tuning.

One loop serves every run that acts in an environment while it learns:

- **finetune**: from an offline run (``from_run``: its train states, seeds,
  preprocessing and dataset) or from scratch beside a dataset (``dataset``:
  RLPD, H2O);
- **online**: no offline data at all (``offrl online sac --env Pendulum-v1``):
  identity preprocessing with the environment's action bounds.

It interacts with ``env``, one environment per seed, for ``online_steps``
steps each. Every step makes one jitted call that runs ``utd`` updates per seed
(a ``lax.scan``, seeds under ``vmap``) on batches from
:class:`~offrl.finetune.buffer.MixedReplay` and returns the next exploratory
action of every seed.

An algorithm takes part with its ordinary contract (``init``, ``update``,
``act``) plus optional hooks:

- ``ONLINE``: an :class:`~offrl.core.registry.OnlineSpec`, the algorithm's
  mixing (``ratio``: ``offline_ratio`` of every batch from the offline data;
  ``union``: offline data in the replay buffer; ``online``: none), ``utd``,
  ``random_steps`` and ``learning_starts``, used where the user leaves them unset.
- ``online_config(config, finetune_config) -> config``: settings that change
  online (Cal-QL's online CQL weight; RLPD's one actor update per step).
- ``start_online(state, config) -> state``: state changes at the switch (IQL
  restarts its actor's learning-rate schedule).
- ``explore(state, observations, key, step, config) -> actions``: the
  collection policy (default: ``act(..., deterministic=False)``).
- ``init_from(config, example_batch, key, base_state, base_config) -> state``
  with ``BASE_ALGORITHMS``: start from another algorithm's run (ResFiT on a BC
  run); ``config_for_base(config, base_config)`` records the base's shape.

Everything the networks see is in their units: observations standardized with
the offline statistics, actions in [-1, 1], rewards scaled like the offline
data. Periodic evaluations (deterministic policy, ``eval_env``, which defaults
to the interaction environment's task) run before the first step (the
starting score), densely in the first 10% of the steps (for the initial drop)
and every ``eval_every`` steps after; the final and best policies are scored
at the end on held-out episodes (:mod:`offrl.run.rundir`).

Episode ``k`` of seed ``s`` resets with ``s * 1_000_003 + k`` online (the
scheme the shipped medium-replay action logs were recorded with) and
``s * 1_000_003 + 500_000 + k`` when fine-tuning. Checkpoints hold the states,
keys, best states, online buffers, the sampling generator, the counters and the
episodes in flight, which a resumed run replays action by action.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.core import registry
from offrl.core.trainer import (
    build_policy,
    example_batch,
    fill_run_length,
    finish_means,
    init_states,
    masked_sums,
    resolve_reward_scaling,
    seed_keys,
    seed_means,
)
from offrl.data.dataset import LABEL_FIELDS
from offrl.data.loading import load_dataset
from offrl.data.preprocess import Preprocessor, apply_preprocessor, fit_preprocessor, scale_action
from offrl.data.returns import dataset_returns_to_go
from offrl.envs.labelers import LabelerError, make_labeler
from offrl.envs.registry import EnvError, check_env_id, get_task, make_env, normalized_score
from offrl.finetune.buffer import FIELDS, MixedReplay
from offrl.run import checkpoint, rundir
from offrl.run.interrupt import RunInterrupted, StopRequest
from offrl.run.loggers import truncate_jsonl
from offrl.run.settings import (
    MIXINGS,  # noqa: F401  (offrl.finetune.loop's API)
    FinetuneConfig,
    RunError,
    check_positive,
    to_jsonable,
)

#: Added to the reset seeds of fine-tuning episodes (online runs add nothing).
FINETUNE_RESET_OFFSET = 500_000


def resolve_config(algo, config: FinetuneConfig) -> FinetuneConfig:
    """``config`` with unset fields taken from the algorithm's :class:`OnlineSpec`."""
    spec = registry.online_spec(algo)
    unset = {
        k: getattr(spec, k)
        for k in ("utd", "random_steps", "learning_starts")
        if getattr(config, k) is None
    }
    return dataclasses.replace(config, **unset)


def evaluation_steps(config: FinetuneConfig) -> list[int]:
    """The steps after which the policy is evaluated (0 = the starting score)."""
    total = config.online_steps
    steps = {0, total}
    steps.update(
        range(config.eval_every, total + 1, config.eval_every) if config.eval_every else ()
    )
    for k in range(1, config.early_evaluations + 1):
        steps.add(max(1, round(total * 0.1 * k / config.early_evaluations)))
    return sorted(s for s in steps if 0 <= s <= total)


def online_metrics(
    evaluation_steps_: list[int],
    scores: np.ndarray,
    total_steps: int,
    episode_scores: list[list[float]] | None = None,
    episode_successes: list[list[float]] | None = None,
) -> dict:
    """Offline score, initial drop and regret per seed (the final and best scores are
    :func:`offrl.run.rundir.score_summary`'s, on held-out episodes).

    Args:
        evaluation_steps_: ``[E]`` steps of the periodic evaluations, the first at 0.
        scores: ``[E, S]`` evaluation scores (normalized where the task has
            references, returns otherwise).
        total_steps: the online steps of the run.
        episode_scores: per seed, the normalized score of every online
            training episode (for the regret without a success signal).
        episode_successes: per seed, 1/0 success of every online training episode.

    ``initial_drop``: ``max(0, offline - min(scores in (0, 10% of the steps]))``,
    the largest fall below the offline score early on. ``regret``: CORL's
    ``mean(1 - success)`` over the online training episodes where the task
    reports success, else ``mean(1 - clip(score / 100, 0, 1))`` over them.
    ``return_regret`` is the latter wherever episode scores exist: on easy
    sparse tasks (PointMaze UMaze) every episode succeeds and the success
    regret is 0 whatever the policy's speed. Spreads are sample standard
    deviations across seeds.
    """
    steps = np.asarray(evaluation_steps_)
    scores = np.asarray(scores, np.float64)
    offline = scores[0]
    early = (steps > 0) & (steps <= 0.1 * total_steps)
    drop = (
        np.maximum(0.0, offline - scores[early].min(axis=0))
        if early.any()
        else np.full_like(offline, np.nan)
    )
    out = {"offline_per_seed": offline.tolist(), "initial_drop_per_seed": drop.tolist()}
    if episode_scores and all(len(s) for s in episode_scores):
        out["return_regret_per_seed"] = [
            float(np.mean(1.0 - np.clip(np.asarray(s) / 100.0, 0.0, 1.0))) for s in episode_scores
        ]
        out["regret_per_seed"] = out["return_regret_per_seed"]
        out["regret_kind"] = "normalized_return"
    if episode_successes and all(len(s) for s in episode_successes):
        out["regret_per_seed"] = [float(np.mean(1.0 - np.asarray(s))) for s in episode_successes]
        out["regret_kind"] = "success"
    for name in ("offline", "initial_drop", "regret", "return_regret"):
        values = out.get(f"{name}_per_seed")
        if values is not None:
            out[f"{name}_mean"] = float(np.mean(values))
            out[f"{name}_std"] = rundir.sample_std(values)
    return out


@dataclasses.dataclass
class _Start:
    """Where an interaction run starts."""

    kind: str
    states: object
    algo_config: object
    pre: Preprocessor
    data: object  # the offline Dataset, None online
    dataset_spec: str | None
    env_id: str | None
    seeds: tuple[int, ...]
    observation_dim: int
    action_dim: int
    source: dict


def _resolve_start(algo, algorithm, config, from_run, dataset, algo_config) -> _Start:
    if from_run is not None:
        ctx = rundir.load_run(from_run)
        base_name = ctx.config["algorithm"]
        dataset_spec = dataset or ctx.config.get("dataset")
        if dataset_spec is None:
            raise RunError(f"{from_run} does not name its dataset; pass --dataset")
        # The offline run's own subset of its dataset (its --filter-key), unless another
        # dataset is given.
        filter_key = None if dataset else (ctx.config.get("train_config") or {}).get("filter_key")
        data = load_dataset(dataset_spec, env_id=ctx.env_id, filter_key=filter_key)
        data.require(LABEL_FIELDS, f"fine-tuning {algorithm} on its transitions")
        seeds = ctx.seeds
        if base_name == algorithm:
            states = ctx.states
            algo_config = algo_config or ctx.algo_config
        elif base_name in getattr(algo, "BASE_ALGORITHMS", ()):
            algo_config = algo_config or algo.Config()
            if hasattr(algo, "config_for_base"):
                algo_config = algo.config_for_base(algo_config, ctx.algo_config)
            init_keys, _ = seed_keys(seeds)
            batch = example_batch(ctx.observation_dim, ctx.action_dim)
            states = jax.vmap(
                lambda k, b: algo.init_from(algo_config, batch, k, b, ctx.algo_config)
            )(init_keys, ctx.states)
        else:
            allowed = (algorithm, *getattr(algo, "BASE_ALGORITHMS", ()))
            raise RunError(
                f"{from_run} holds a {base_name} run, but {algorithm} starts from a run of "
                f"{' or '.join(allowed)}; train one first (offrl train {allowed[-1]} ...)"
            )
        source = {"from_run": str(from_run), "from_algorithm": base_name, "from_step": ctx.step}
        return _Start(
            "finetune", states, algo_config, ctx.preprocessor, data, dataset_spec, ctx.env_id,
            seeds, ctx.observation_dim, ctx.action_dim, source,
        )  # fmt: skip
    algo_config = fill_run_length(algo_config or algo.Config(), config.online_steps * config.utd)
    seeds = tuple(config.seeds)
    init_keys, _ = seed_keys(seeds)
    if dataset is None:
        if config.env is None:
            raise RunError(
                "pass --env ENV (online training), --from RUN_DIR (an offline run) or "
                "--dataset (to start from scratch beside offline data)"
            )
        if config.mixing not in ("auto", "online"):
            raise RunError(f"--mixing {config.mixing} needs offline data; pass --dataset")
        env = make_env(config.env)
        obs_dim = int(np.prod(env.observation_space.shape))
        act_dim = int(np.prod(env.action_space.shape))
        pre = Preprocessor.identity(obs_dim, act_dim).replace(
            action_low=env.action_space.low.astype(np.float32),
            action_high=env.action_space.high.astype(np.float32),
        )
        env.close()
        states = init_states(algo, algo_config, obs_dim, act_dim, init_keys)
        pre = jax.tree_util.tree_map(jnp.asarray, pre)
        return _Start(
            "online", states, algo_config, pre, None, None, config.env.split("@", 1)[0], seeds,
            obs_dim, act_dim, {"online": True},
        )  # fmt: skip
    data = load_dataset(dataset, env_id=config.eval_env)
    data.require(LABEL_FIELDS, f"fine-tuning {algorithm} on its transitions")
    states = init_states(algo, algo_config, data.observation_dim, data.action_dim, init_keys)
    scaling = resolve_reward_scaling(algo, config.reward_scaling, data.info.env_id)
    pre = fit_preprocessor(data, config.normalize_observations, scaling)
    pre = jax.tree_util.tree_map(jnp.asarray, pre)
    source = {"dataset": str(dataset), "reward_scaling": scaling}
    return _Start(
        "finetune", states, algo_config, pre, data, str(dataset), data.info.env_id, seeds,
        data.observation_dim, data.action_dim, source,
    )  # fmt: skip


def _offline_rows(data, pre: Preprocessor, discount: float, role_model=None) -> dict:
    """The offline data in the networks' units, as buffer fields; with ``role_model``
    (``--labeler``), also its actions for the data's raw observations."""
    prepared = apply_preprocessor(data, pre).to_numpy()
    rows = {
        name: np.asarray(getattr(prepared, name), np.float32)
        for name in FIELDS
        if name != "mc_returns"
    }
    rows["mc_returns"] = dataset_returns_to_go(prepared, discount)
    if role_model is not None:
        rows["label_actions"] = role_model(np.asarray(data.to_numpy().observations))
    return rows


def _build_step(algo, algo_config, explore):
    """``(states, batches, observations, keys, step) -> (states, (sums, counts), actions)``.

    ``batches`` hold ``utd`` batches per seed; the metrics come back as the
    :func:`~offrl.core.trainer.masked_sums` totals over them, which the loop adds
    up to each evaluation.
    """

    def one_seed(state, batches, observation, key, step):
        def body(state, batch):
            state, metrics = algo.update(state, batch, algo_config)
            return state, masked_sums(metrics)

        state, (sums, counts) = jax.lax.scan(body, state, batches)
        totals = jax.tree.map(lambda x: x.sum(axis=0), (sums, counts))
        action = explore(state, observation[None], key, step, algo_config)[0]
        return state, totals, action

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, 0, None)))


def _default_explore(algo):
    def explore(state, observations, key, step, config):
        return algo.act(state, observations, key, False, config)

    return getattr(algo, "explore", explore)


def finetune(
    algorithm: str,
    run_dir: str | pathlib.Path,
    config: FinetuneConfig | None = None,
    from_run: str | pathlib.Path | None = None,
    dataset: str | None = None,
    algo_config=None,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict:
    """Train ``algorithm`` while it interacts; returns the summary (also in
    ``summary.json``).

    Args:
        algorithm: a registered name (``sac`` online; ``iql``, ``calql``, ``cql``,
            ``rlpd``, ``resfit``, ``h2o`` fine-tuning).
        run_dir: the new run directory (must not exist unless resuming).
        config: a :class:`FinetuneConfig`; ``config.env`` alone (no ``from_run``,
            no ``dataset``) is online training.
        from_run: an offline run to start from.
        dataset: the offline data when starting from scratch (or to replace
            the run's own).
        algo_config: the algorithm's ``Config`` (the offline run's by default).
        resume: continue ``run_dir`` from its last checkpoint.
        stop_after: stop with a checkpoint once this many steps are done.
    """
    try:
        algo = registry.get(algorithm)
    except KeyError as error:
        raise RunError(error.args[0]) from error
    algorithm = algorithm.replace("-", "_").lower()
    config = resolve_config(algo, config or FinetuneConfig())
    config.check()
    if stop_after is not None:
        check_positive(stop_after=stop_after)
    for flag, value in (("--env", config.env), ("--eval-env", config.eval_env)):
        if value is not None:
            try:
                check_env_id(value)
            except (EnvError, ValueError) as error:
                raise RunError(f"{flag}: {error}") from error
    run_dir = pathlib.Path(run_dir)
    rundir.check_new_or_resumable(run_dir, resume)

    start = _resolve_start(algo, algorithm, config, from_run, dataset, algo_config)
    states, algo_config, pre, seeds = start.states, start.algo_config, start.pre, start.seeds
    if hasattr(algo, "online_config"):
        algo_config = algo.online_config(algo_config, config)
    env_id = config.env or start.env_id
    eval_env_id = config.eval_env or start.env_id or env_id
    if env_id is None:
        raise RunError("the data names no environment; pass --env")
    for name, value in (("environment", env_id), ("evaluation environment", eval_env_id)):
        try:
            check_env_id(value)
        except (EnvError, ValueError) as error:
            raise RunError(f"the {name} cannot be created: {error}") from error
    if start.kind == "online":
        mixing = "online"
    else:
        mixing = registry.online_spec(algo).mixing
        mixing = mixing if config.mixing == "auto" else config.mixing
    offline_ratio = {"ratio": config.offline_ratio, "union": None, "online": 0.0}[mixing]
    role_model = _labeler(config.labeler, env_id, pre)  # before anything is written
    discount = float(getattr(algo_config, "discount", 0.99))

    resolved = {
        "kind": start.kind,
        "algorithm": algorithm,
        "algorithm_config": to_jsonable(algo_config),
        "finetune_config": to_jsonable(config),
        "seeds": list(seeds),
        "mixing": mixing,
        "offline_ratio": offline_ratio,
        "dataset": start.dataset_spec,
        "env_id": env_id,
        "eval_env_id": eval_env_id,
        "observation_dim": start.observation_dim,
        "action_dim": start.action_dim,
        "source": start.source,
    }
    rundir.open_run(run_dir, resolved, resume)

    if hasattr(algo, "start_online"):
        states = jax.vmap(lambda s: algo.start_online(s, algo_config))(states)
    num_seeds, obs_dim, act_dim = len(seeds), start.observation_dim, start.action_dim
    offline = None if mixing == "online" else _offline_rows(start.data, pre, discount, role_model)
    capacity = min(config.buffer_size, config.online_steps)
    buffer = MixedReplay(
        offline, num_seeds, capacity, obs_dim, act_dim, offline_ratio,
        label_fields=("label_actions",) if role_model is not None else (),
    )  # fmt: skip
    rng = np.random.default_rng(list(seeds) + [20_231_127])
    keys = jnp.stack([jax.random.PRNGKey(10_000 + s) for s in seeds])
    best = rundir.BestPolicy(states, num_seeds)
    counters = {
        "step": 0,
        "episodes": [0] * num_seeds,
        "episode_scores": [[] for _ in seeds],
        "episode_successes": [[] for _ in seeds],
        "episode_costs": [[] for _ in seeds],
    }
    ckpt_dir = run_dir / "checkpoints"
    saved_extra: dict = {}
    records: list[dict] = []
    if resume:
        replays: dict[int, dict] = {}

        def check(step: int) -> None:
            replays[step] = _read_replay(ckpt_dir / f"replay_{step}.npz", step, buffer)

        last, restored = rundir.restore_latest(
            ckpt_dir,
            rundir.payload(states, keys, 0, pre, best.state_dict()),
            check=check,
            side_files=lambda step: [f"replay_{step}.npz"],
        )
        if last is not None:
            states, keys = restored["states"], restored["keys"]
            best.load(restored.get("best"))
            saved_replay = replays[last]
            buffer.load_state_dict(saved_replay)
            rng.bit_generator.state = json.loads(str(saved_replay["rng"]))
            counters = json.loads(str(saved_replay["counters"]))
            # Checkpoints from before training costs were counted.
            counters.setdefault("episode_costs", [[] for _ in seeds])
            saved_extra = saved_replay
        records = truncate_jsonl(run_dir / "metrics.jsonl", counters["step"])
    wall_logged = rundir.logged_wall(records)
    evaluations = rundir.evaluations_from_metrics(
        [r for r in records if r["step"] <= counters["step"]]
    )

    explore = _default_explore(algo)
    step_fn = _build_step(algo, algo_config, explore)
    act_fn = jax.jit(
        jax.vmap(
            lambda s, o, k, t: explore(s, o[None], k, t, algo_config)[0], in_axes=(0, 0, 0, None)
        )
    )
    policy = build_policy(algo, algo_config)
    eval_steps = evaluation_steps(config)
    task = get_task(eval_env_id)
    interaction_task = get_task(env_id.split("@", 1)[0])
    envs = [make_env(env_id) for _ in seeds]
    low = np.asarray(pre.action_low)
    high = np.asarray(pre.action_high)
    obs_mean, obs_std = np.asarray(pre.observation_mean), np.asarray(pre.observation_std)
    r_scale, r_shift = float(pre.reward_scale), float(pre.reward_shift)
    reset_offset = 0 if start.kind == "online" else FINETUNE_RESET_OFFSET
    logger = rundir.open_logger(run_dir, config, resolved)
    label = f"{start.kind} {algorithm} ({num_seeds} seed{'s' if num_seeds > 1 else ''})"

    def evaluate_now(step: int) -> dict:
        return rundir.periodic_evaluation(
            policy, states, pre, eval_env_id, config.eval_episodes, step, evaluations, best
        )

    def reset(seed_index: int):
        episode = counters["episodes"][seed_index]
        observation, _ = envs[seed_index].reset(
            seed=seeds[seed_index] * 1_000_003 + reset_offset + episode
        )
        return np.asarray(observation, np.float32)

    step = counters["step"]
    if step == 0 and not evaluations:
        logger.log(0, evaluate_now(0))
    episode_return = np.zeros(num_seeds)
    episode_success = np.zeros(num_seeds)
    episode_cost = np.zeros(num_seeds)  # info["cost"] summed over the episode in flight
    metric_totals = None  # (sums, counts) since the last evaluation, on the device
    if "episode_return" in saved_extra:  # checkpoints that keep episodes in flight
        episode_return[:] = saved_extra["episode_return"]
        episode_success[:] = saved_extra["episode_success"]
        if "episode_cost" in saved_extra:
            episode_cost[:] = saved_extra["episode_cost"]
        sums = {
            k.removeprefix("metric_sum/"): jnp.asarray(saved_extra[k])
            for k in saved_extra
            if k.startswith("metric_sum/")
        }
        counts = {
            k.removeprefix("metric_count/"): jnp.asarray(saved_extra[k])
            for k in saved_extra
            if k.startswith("metric_count/")
        }
        if sums and set(sums) == set(counts):
            metric_totals = (sums, counts)
    observations = np.zeros((num_seeds, obs_dim), np.float32)
    for i in range(num_seeds):
        observation = None
        rows = _in_flight_rows(saved_extra, i)
        if rows.size:
            observation = _replay_episode(
                envs[i], reset(i), buffer, i, rows, low, high, obs_mean, obs_std
            )
            if observation is None:
                print(
                    f"warning: seed {seeds[i]}: the episode in flight at the checkpoint could "
                    "not be replayed exactly (the environment is not deterministic, or the "
                    "buffer overwrote its start); it is cut there and a new one starts, so "
                    "this run differs from an uninterrupted one",
                    file=sys.stderr,
                    flush=True,
                )
                buffer.episode_rows[i] = [int(r) for r in rows]
                _cut_episode(buffer, i, discount)
                episode_return[i] = episode_success[i] = episode_cost[i] = 0.0
                counters["episodes"][i] += 1
            else:
                buffer.episode_rows[i] = [int(r) for r in rows]
        observations[i] = reset(i) if observation is None else observation
    started = time.perf_counter()
    start_step = step
    # Wall time of the processes before this one (None: a checkpoint predates this
    # record, so the total is unknown), including work logged after the checkpoint.
    wall_before = counters.get("wall_seconds", 0.0 if step == 0 else None)
    if wall_before is not None and wall_logged is not None:
        wall_before = max(wall_before, wall_logged)
    interrupted = False
    heldout = None  # the final and best policies on held-out episodes, at the last step
    saved_step = step if step else None
    stop = StopRequest("the current environment step")
    progress = rundir.Progress(config.progress, config.online_steps, step, label, unit="steps/s")

    def save() -> None:
        nonlocal saved_step
        if saved_step == step:
            return
        counters["step"] = step
        _record_wall(counters, wall_before, started)
        extra = {
            "episode_return": episode_return,
            "episode_success": episode_success,
            "episode_cost": episode_cost,
        }
        if metric_totals is not None:
            extra.update({f"metric_sum/{k}": np.asarray(v) for k, v in metric_totals[0].items()})
            extra.update({f"metric_count/{k}": np.asarray(v) for k, v in metric_totals[1].items()})
        _save(
            ckpt_dir,
            step,
            rundir.payload(states, keys, step, pre, best.state_dict()),
            buffer,
            rng,
            counters,
            extra,
        )
        saved_step = step

    try:
        progress.__enter__()
        stop.__enter__()
        while step < config.online_steps:
            normalized_obs = jnp.asarray((observations - obs_mean) / obs_std, jnp.float32)
            keys, act_keys = _split_keys(keys)
            if step < config.random_steps:
                actions = rng.uniform(-1.0, 1.0, (num_seeds, act_dim)).astype(np.float32)
            elif step >= config.learning_starts and (
                buffer.offline_size > 0 or buffer.size.min() > 0
            ):
                batches = buffer.sample(rng, config.batch_size, config.utd)
                states, totals, actions = step_fn(
                    states, batches, normalized_obs, act_keys, jnp.int32(step)
                )
                metric_totals = totals if metric_totals is None else _add(metric_totals, totals)
                actions = np.asarray(actions)
            else:
                actions = np.asarray(act_fn(states, normalized_obs, act_keys, jnp.int32(step)))
            actions = np.clip(actions, -1.0, 1.0)
            env_actions = _env_actions(actions, low, high)
            for i, env in enumerate(envs):
                next_obs, reward, terminated, truncated, info = env.step(env_actions[i])
                next_obs = np.asarray(next_obs, np.float32)
                episode_return[i] += reward
                if info.get("success", info.get("is_success", False)):
                    episode_success[i] = 1.0
                episode_cost[i] += float(info.get("cost", 0.0))
                labels = (
                    {}
                    if role_model is None
                    else {"label_actions": role_model(observations[i][None])[0]}
                )
                buffer.add(
                    i,
                    observations=(observations[i] - obs_mean) / obs_std,
                    actions=actions[i],
                    rewards=r_scale * reward + r_shift,
                    next_observations=(next_obs - obs_mean) / obs_std,
                    terminations=float(terminated),
                    truncations=float(truncated),
                    **labels,
                )
                if terminated or truncated:
                    buffer.end_episode(i, discount)
                    score = normalized_score(episode_return[i], interaction_task)
                    counters["episode_scores"][i].append(
                        float(score) if score is not None else float("nan")
                    )
                    if "success" in info or "is_success" in info:
                        counters["episode_successes"][i].append(float(episode_success[i]))
                    if "cost" in info:
                        counters["episode_costs"][i].append(float(episode_cost[i]))
                    counters["episodes"][i] += 1
                    episode_return[i], episode_success[i], episode_cost[i] = 0.0, 0.0, 0.0
                    observations[i] = reset(i)
                else:
                    observations[i] = next_obs
            step += 1
            if step % 100 == 0:
                rate = (step - start_step) / max(time.perf_counter() - started, 1e-9)
                progress.update(step, {"time/steps_per_second": rate})
            if step in eval_steps:
                record = (
                    seed_means(finish_means(*metric_totals), "train")
                    if metric_totals is not None
                    else {}
                )
                metric_totals = None
                record["time/steps_per_second"] = (step - start_step) / max(
                    time.perf_counter() - started, 1e-9
                )
                if wall_before is not None:
                    record["time/wall_seconds"] = rundir.total_wall(
                        wall_before, time.perf_counter() - started
                    )
                record.update(evaluate_now(step))
                if step == config.online_steps and config.heldout_episodes:
                    heldout = rundir.heldout_evaluation(
                        policy, states, best, pre, eval_env_id, config.heldout_episodes, step
                    )
                    record.update(rundir.evaluation_metrics(heldout["final"], "heldout/final"))
                logger.log(step, record)
                progress.update(step, record)
            if step % config.checkpoint_every == 0 or step == config.online_steps:
                save()
            if step < config.online_steps and (
                stop.requested or (stop_after is not None and step >= stop_after)
            ):
                save()
                interrupted = True
                break
    finally:
        stop.__exit__(None, None, None)
        progress.__exit__(None, None, None)
        logger.close()
        for env in envs:
            env.close()

    elapsed = time.perf_counter() - started
    summary = {
        "kind": start.kind,
        "algorithm": algorithm,
        "env_id": env_id,
        "eval_env_id": eval_env_id,
        "seeds": list(seeds),
        "online_steps": step,
        "utd": config.utd,
        "mixing": mixing,
        "offline_ratio": offline_ratio,
        "wall_seconds": rundir.total_wall(wall_before, elapsed),
        "wall_seconds_this_process": elapsed,
        "resumed_at_step": start_step,
        "interrupted": interrupted,
        "task_reference": dataclasses.asdict(task) if task is not None else None,
        **start.source,
        **rundir.score_summary(evaluations, heldout),
    }
    if evaluations:
        periodic = online_metrics(
            [e["step"] for e in evaluations],
            np.asarray([rundir.scores(e) for e in evaluations]),
            config.online_steps,
            counters["episode_scores"] if interaction_task is not None else None,
            counters["episode_successes"],
        )
        if start.kind == "online":  # no offline score to start from
            periodic = {
                k: v for k, v in periodic.items() if not k.startswith(("offline", "initial"))
            }
        summary.update(periodic)
    summary.update(training_costs(counters["episode_costs"]))
    rundir.write_summary(run_dir, summary)
    if interrupted and stop.requested:
        raise RunInterrupted(
            f"stopped at step {step} with a checkpoint; continue with --resume --run-dir {run_dir}",
            stop.signum,
        )
    return summary


def _labeler(name: str | None, env_id: str, pre: Preprocessor):
    """``--labeler``: raw observations ``[N, D]`` -> the role model's actions ``[N, A]`` in
    the networks' units (``[-1, 1]``), or ``None`` without a labeler."""
    if name is None:
        return None
    env = make_env(env_id)
    try:
        controller = make_labeler(name, env)
    except LabelerError as error:
        raise RunError(f"--labeler: {error}") from error
    low, high = np.asarray(pre.action_low), np.asarray(pre.action_high)

    def label(observations: np.ndarray) -> np.ndarray:
        actions = np.stack([controller(o) for o in observations]).astype(np.float32)
        return np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)

    return label


def training_costs(episode_costs: list[list[float]]) -> dict:
    """Violations while learning, per seed, over the finished online training episodes
    of a task that reports ``info["cost"]``: the summed cost (``training_cost``) and
    the share of episodes with any (``training_violation_rate``); empty otherwise."""
    if not episode_costs or not all(len(c) for c in episode_costs):
        return {}
    out = {
        "training_cost_per_seed": [float(np.sum(c)) for c in episode_costs],
        "training_violation_rate_per_seed": [
            float(np.mean(np.asarray(c) > 0)) for c in episode_costs
        ],
        "training_episodes_per_seed": [len(c) for c in episode_costs],
    }
    for name in ("training_cost", "training_violation_rate"):
        values = out[f"{name}_per_seed"]
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_std"] = rundir.sample_std(values)
    return out


def _record_wall(counters: dict, wall_before: float | None, started: float) -> None:
    # A run resumed from a checkpoint without the record has no total to keep.
    total = rundir.total_wall(wall_before, time.perf_counter() - started)
    if total is not None:
        counters["wall_seconds"] = total


@jax.jit
def _split_keys(keys):
    # Jitted: the op-by-op vmap cost ~1.6 ms per environment step, against ~20 us.
    split = jax.vmap(jax.random.split)(keys)
    return split[:, 0], split[:, 1]


@jax.jit
def _add(totals, more):
    # One dispatch for all metrics instead of one device add per metric (~0.2 ms a step).
    return jax.tree.map(jnp.add, totals, more)


def _env_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Network actions in [-1, 1] to the environment's bounds (NumPy, on the host)."""
    return scale_action(actions, low, high)


def _in_flight_rows(saved: dict, seed: int) -> np.ndarray:
    """Buffer rows of ``seed``'s episode in flight at the checkpoint (none for
    checkpoints written before episodes were kept in flight)."""
    if "in_flight_rows" not in saved:
        return np.zeros(0, np.int64)
    lengths = np.asarray(saved["in_flight_lengths"], np.int64)
    start = int(lengths[:seed].sum())
    return np.asarray(saved["in_flight_rows"], np.int64)[start : start + int(lengths[seed])]


def _replay_episode(env, observation, buffer, seed, rows, low, high, obs_mean, obs_std):
    """Step ``env`` (just reset to the episode's start, ``observation``) through the
    recorded actions of ``rows``; the observation it reaches, or ``None`` when the
    replay does not reproduce the recorded observations bit for bit."""
    online = buffer.online
    for row in rows:
        recorded = online["observations"][seed, row]
        if not np.array_equal((observation - obs_mean) / obs_std, recorded):
            return None
        action = online["actions"][seed, row][None]
        next_obs, _, terminated, truncated, _ = env.step(_env_actions(action, low, high)[0])
        if terminated or truncated:
            return None
        observation = np.asarray(next_obs, np.float32)
    if not np.array_equal(
        (observation - obs_mean) / obs_std, online["next_observations"][seed, rows[-1]]
    ):
        return None
    return observation


def _cut_episode(buffer: MixedReplay, seed: int, discount: float) -> None:
    """End ``seed``'s episode in flight as a truncation at its last recorded row."""
    rows = np.asarray(buffer.episode_rows[seed], np.int64)
    if rows.size:
        buffer.online["truncations"][seed, rows[-1]] = 1.0
        buffer.end_episode(seed, discount)


def _read_replay(path: pathlib.Path, step: int, buffer: MixedReplay) -> dict:
    """A checkpoint's replay file, checked against ``buffer``'s shapes."""

    def check(saved: dict) -> None:
        for name, array in buffer.online.items():
            if saved[f"online_{name}"].shape != array.shape:
                raise ValueError(
                    f"online_{name} has shape {saved[f'online_{name}'].shape}, the run's "
                    f"buffer {array.shape}"
                )

    return checkpoint.read_side_file(path, step, check)


def _save(
    ckpt_dir: pathlib.Path, step: int, payload, buffer: MixedReplay, rng, counters, extra: dict
) -> None:
    """The replay (named by the checkpoint's step), then the checkpoint: a published
    ``step_<N>`` always has its ``replay_<N>.npz``.

    The buffer is saved as it is, with the rows of every episode in flight and
    the loop's accumulators (``extra``): a resumed run replays those episodes'
    actions to bring its environments back to the same state.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = buffer.state_dict()
    rows = [np.asarray(r, np.int64) for r in buffer.episode_rows]
    state["in_flight_rows"] = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    state["in_flight_lengths"] = np.asarray([r.size for r in rows], np.int64)
    tmp = ckpt_dir / f".replay_{step}.tmp.npz"
    np.savez(
        tmp,
        **state,
        **extra,
        rng=json.dumps(rng.bit_generator.state),
        counters=json.dumps(counters),
    )
    tmp.replace(ckpt_dir / f"replay_{step}.npz")
    checkpoint.save(ckpt_dir, step, payload)
    for old in checkpoint.steps(ckpt_dir)[:-2]:
        (ckpt_dir / f"replay_{old}.npz").unlink(missing_ok=True)
