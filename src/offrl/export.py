"""``offrl export``: a run's policy as one ONNX file per seed, for use outside offrl.

The graph is the deterministic policy exactly as evaluation runs it
(:func:`offrl.core.trainer.act_in_env`): raw observations in, actions in the
environment's units out, the run's :class:`~offrl.data.preprocess.Preprocessor`
(observation standardization, the action mapping and clip) inside, a dynamic
batch dimension ``B``. A sequence policy's inputs are its window (``observations
[B, K, obs_dim]``, ``actions [B, K, act_dim]``, ``returns_to_go``, ``timesteps``
(int32) and ``mask`` ``[B, K]``), which :class:`offrl.deploy.Window` keeps.

With ``--filter BARRIER_RUN`` the barrier run's safety filter is in the same graph
(:func:`offrl.safety.shield.filter_in_env`): the CBF-QP's exact projection
(``cbf``; the barrier's gradient is part of the graph), or the model-free Qc
filter (``qc``: its fixed number of linearize-and-project steps unrolled as an
ONNX loop). Both are the functions ``offrl eval --filter`` runs.

How: the one-row policy is traced to a jaxpr with JAX (which differentiates
through the barrier where the filter needs its gradient), the batch is added
with ``vmap`` and jax2onnx converts the primitives. Every file carries JSON
metadata (``metadata_props["offrl"]``: algorithm, dataset, step, seed, spaces,
offrl version, the filter) that :mod:`offrl.deploy` reads, and the export checks
the file against JAX on observations drawn around the data's mean before it is
kept.

Not exported: Decision Mamba (its associative scan needs a padding ONNX does not
have; the error says so), the best checkpoint (``--step`` picks a saved one).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import pathlib
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from offrl import __version__
from offrl.core.trainer import act_in_env, history_length
from offrl.deploy import METADATA_KEY, WINDOW_INPUTS
from offrl.run.rundir import load_run
from offrl.run.settings import RunError
from offrl.safety.shield import filter_in_env, load_barrier

#: The graph's output name.
OUTPUT = "env_actions"
#: Largest ONNX-vs-JAX action difference accepted without a warning.
PARITY_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Export a run's deterministic policy (one ONNX file per seed)."""

    run_dir: tyro.conf.Positional[str]
    """The run directory (offrl train, finetune or online)."""
    format: Literal["onnx"] = "onnx"
    """The file format."""
    output: str | None = None
    """A directory for the files (default RUN_DIR/export), or a .onnx file when one
    seed is exported."""
    seed: int | None = None
    """Export only this seed of the run (one of its --seeds); default: every seed."""
    step: int | None = None
    """The checkpoint (default: the latest)."""
    filter: str | None = None
    """A barrier run (offrl safety fit) whose safety filter goes into the graph."""
    filter_mode: Literal["cbf", "qc"] = "cbf"
    """cbf: the CBF-QP projection with the learned model; qc: the model-free filter."""
    filter_margin: float | None = None
    """The filter's safety buffer on B (default: the barrier run's filter_margin)."""
    opset: int = 17
    """The ONNX opset (17 runs on onnxruntime >= 1.13)."""
    check_samples: int = 1000
    """Compare the file with JAX on this many observations before keeping it (0: no
    check)."""
    overwrite: bool = False
    """Replace existing files."""


def _row_specs(algo, config, observation_dim: int, action_dim: int):
    """The inputs of one row: ``[obs_dim]``, or a sequence policy's window."""
    length = history_length(algo, config)
    if length is None:
        return None, [jax.ShapeDtypeStruct((observation_dim,), jnp.float32)]
    shapes = {
        "observations": ((length, observation_dim), jnp.float32),
        "actions": ((length, action_dim), jnp.float32),
        "returns_to_go": ((length,), jnp.float32),
        "timesteps": ((length,), jnp.int32),
        "mask": ((length,), jnp.float32),
    }
    return length, [jax.ShapeDtypeStruct(*shapes[name]) for name in WINDOW_INPUTS]


def policy_function(algo, config, state, pre, barrier=None, window: bool = False):
    """The one-row policy in environment units (a window's arrays when ``window``),
    filtered when ``barrier`` is ``(pre, state, config, mode, margin)``."""
    key = jax.random.PRNGKey(0)  # deterministic: the key is not used
    # A restored checkpoint holds NumPy leaves; closed over as constants they must be JAX
    # arrays (a NumPy array cannot be indexed by a traced index, e.g. Uni-O4's choice).
    state = jax.tree_util.tree_map(jnp.asarray, state)
    if barrier is not None:
        barrier = (barrier[0], jax.tree_util.tree_map(jnp.asarray, barrier[1]), *barrier[2:])

    def row(*inputs):
        if window:
            observations = {name: x[None] for name, x in zip(WINDOW_INPUTS, inputs, strict=True)}
            mask = inputs[WINDOW_INPUTS.index("mask")]
            current = inputs[0][jnp.maximum(jnp.sum(mask > 0) - 1, 0)][None]
        else:
            observations = current = inputs[0][None]
        actions = act_in_env(algo, config, state, pre, observations, key, True)
        if barrier is not None:
            b_pre, b_state, b_config, mode, margin = barrier
            actions, _ = filter_in_env(b_pre, b_state, b_config, current, actions, mode, margin)
        return actions[0]

    return row


def to_onnx_model(row, row_specs, input_names, name: str, opset: int):
    """The batched graph of ``row`` as an ONNX ``ModelProto``."""
    from jax2onnx import to_onnx

    closed = jax.make_jaxpr(row)(*row_specs)

    def batched(*inputs):
        return jax.vmap(lambda *x: jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *x)[0])(*inputs)

    (batch,) = jax.export.symbolic_shape("B")
    specs = [jax.ShapeDtypeStruct((batch, *s.shape), s.dtype) for s in row_specs]
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)  # its serializer's notes
    try:
        return to_onnx(
            batched,
            specs,
            model_name=name,
            opset=opset,
            input_names=list(input_names),
            output_names=[OUTPUT],
        ), batched
    except NotImplementedError as error:
        raise RunError(
            f"{name}: its policy uses an operation ONNX cannot express ({error}); "
            "it cannot be exported"
        ) from None


def _check_inputs(row_specs, pre, samples: int, rng: np.random.Generator, length):
    """Observations around the data's mean (3 standard deviations) and, for a window,
    a plausible window (actions in the bounds, the first steps real)."""
    mean = np.asarray(pre.observation_mean, np.float32)
    std = np.asarray(pre.observation_std, np.float32)
    low, high = np.asarray(pre.action_low), np.asarray(pre.action_high)
    if length is None:
        return [(mean + 3 * std * rng.standard_normal((samples, mean.size))).astype(np.float32)]
    k = length
    filled = rng.integers(1, k + 1, samples)
    mask = (np.arange(k)[None] < filled[:, None]).astype(np.float32)
    return [
        (mean + 3 * std * rng.standard_normal((samples, k, mean.size))).astype(np.float32)
        * mask[..., None],
        (low + (high - low) * rng.uniform(size=(samples, k, low.size))).astype(np.float32)
        * mask[..., None],
        rng.normal(0, 100, (samples, k)).astype(np.float32) * mask,
        np.tile(np.arange(k, dtype=np.int32), (samples, 1)) * mask.astype(np.int32),
        mask,
    ]


def parity(model, batched, inputs, input_names) -> float:
    """The largest absolute difference between onnxruntime's and JAX's actions."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options)
    onnx_actions = session.run(None, dict(zip(input_names, inputs, strict=True)))[0]
    jax_actions = np.asarray(jax.jit(batched)(*inputs))
    return float(np.max(np.abs(onnx_actions - jax_actions)))


def _write(model, path: pathlib.Path, metadata: dict, overwrite: bool) -> None:
    import onnx

    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    model.producer_name = "offrl"
    model.producer_version = __version__
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    onnx.save(model, temporary)
    os.replace(temporary, path)


def export_run(config: ExportConfig, warn=print) -> list[dict]:
    """Write the files; returns one record per file (path, seed, size, parity)."""
    context = load_run(config.run_dir, config.step)
    seeds = list(context.seeds)
    if config.seed is not None and config.seed not in seeds:
        raise RunError(
            f"--seed {config.seed}: {config.run_dir} has seeds {seeds}; pick one of them"
        )
    chosen = [config.seed] if config.seed is not None else seeds
    output = pathlib.Path(config.output or pathlib.Path(config.run_dir) / "export")
    if output.suffix == ".onnx" and len(chosen) > 1:
        raise RunError(
            f"--output {output} is one file but {len(chosen)} seeds are exported; pass a "
            "directory or --seed"
        )
    barrier_context, filter_info = None, None
    if config.filter is not None:
        barrier_context = load_barrier(config.filter)
        if barrier_context.observation_dim != context.observation_dim:
            raise RunError(
                f"the barrier in {config.filter} takes {barrier_context.observation_dim}-"
                f"dimensional observations but {config.run_dir}'s policy "
                f"{context.observation_dim}; learn the barrier on data from the same task"
            )
        filter_info = {
            "run_dir": pathlib.Path(config.filter).name,
            "mode": config.filter_mode,
            "margin": config.filter_margin
            if config.filter_margin is not None
            else barrier_context.algo_config.filter_margin,
            "barrier_step": barrier_context.step,
        }
    suffix = "" if config.filter is None else f"_filtered_{config.filter_mode}"
    paths = {
        seed: output if output.suffix == ".onnx" else output / f"policy_seed{seed}{suffix}.onnx"
        for seed in chosen
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not config.overwrite:  # checked for every file before writing any
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")
    length, row_specs = _row_specs(
        context.algo, context.algo_config, context.observation_dim, context.action_dim
    )
    input_names = WINDOW_INPUTS if length is not None else ("observations",)
    algorithm = context.config["algorithm"]
    pre = context.preprocessor
    target = getattr(context.algo_config, "target_return", None)
    records = []
    for seed in chosen:
        index = seeds.index(seed)
        state = jax.tree_util.tree_map(lambda x, i=index: x[i], context.states)
        barrier, seed_filter = None, None
        if barrier_context is not None:  # pair seed i with barrier seed i, as the shield does
            b_index = index if len(barrier_context.seeds) == len(seeds) else 0
            b_state = jax.tree_util.tree_map(lambda x, i=b_index: x[i], barrier_context.states)
            barrier = (
                barrier_context.preprocessor,
                b_state,
                barrier_context.algo_config,
                config.filter_mode,
                config.filter_margin,
            )
            seed_filter = {**filter_info, "barrier_seed": barrier_context.seeds[b_index]}
        row = policy_function(
            context.algo, context.algo_config, state, pre, barrier, window=length is not None
        )
        model, batched = to_onnx_model(
            row, row_specs, input_names, f"{algorithm}_seed{seed}", config.opset
        )
        max_diff = None
        if config.check_samples > 0:
            inputs = _check_inputs(
                row_specs, pre, config.check_samples, np.random.default_rng(seed), length
            )
            max_diff = parity(model, batched, inputs, input_names)
            if max_diff > PARITY_TOLERANCE:
                warn(
                    f"warning: seed {seed}: ONNX and JAX actions differ by up to {max_diff:.2e} "
                    f"on {config.check_samples} observations"
                )
        metadata = {
            "format_version": 1,
            "offrl_version": __version__,
            "algorithm": algorithm,
            "dataset": context.config.get("dataset"),
            "env_id": context.env_id,
            "run_dir": pathlib.Path(config.run_dir).name,
            "step": context.step,
            "seed": seed,
            "observation_dim": context.observation_dim,
            "action_dim": context.action_dim,
            "action_low": np.asarray(pre.action_low).tolist(),
            "action_high": np.asarray(pre.action_high).tolist(),
            "inputs": list(input_names),
            "output": OUTPUT,
            "window_length": length,
            "target_return": target,
            "target_return_scaled": None
            if target is None
            else float(pre.reward_scale) * float(target),
            "reward_scale": float(pre.reward_scale),
            "reward_shift": float(pre.reward_shift),
            "filter": seed_filter,
            "deterministic": True,
            "check_max_abs_diff": max_diff,
            "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        path = paths[seed]
        _write(model, path, metadata, config.overwrite)
        records.append(
            {"path": str(path), "seed": seed, "bytes": path.stat().st_size, "max_diff": max_diff}
        )
    return records
