"""Run an exported offrl policy with NumPy and onnxruntime alone (no JAX).

``offrl export RUN_DIR --format onnx`` writes one ONNX file per seed: raw
observations in, actions in the environment's units out, the run's
preprocessing (and, with ``--filter``, the safety filter) inside the graph, a
dynamic batch. This module is what a robot needs to act with such a file::

    from offrl.deploy import load_policy

    policy = load_policy("policy_seed0.onnx")
    action = policy(observation)          # [obs_dim] -> [act_dim]
    actions = policy(observations)        # [N, obs_dim] -> [N, act_dim]

A sequence policy (Decision Transformer, BC-RNN, ...) acts on the episode's
last ``K`` steps; the policy keeps that window: call :meth:`Policy.reset` when
episodes start and :meth:`Policy.record` with the actions taken and the rewards
received after every step, as :func:`offrl.envs.rollout.evaluate` does.

It imports only NumPy at module level and onnxruntime when a policy is loaded,
so it runs where JAX is not installed (``pip install "offrl[deploy]"``, or copy
this one file beside the ONNX file). :class:`Window` is also the history that
offrl's own evaluation keeps for sequence policies, so the two cannot drift.
"""

from __future__ import annotations

import json
import os

import numpy as np

#: The key of the JSON metadata an exported file carries (``metadata_props``).
METADATA_KEY = "offrl"
#: The input names of a sequence policy's graph, in order.
WINDOW_INPUTS = ("observations", "actions", "returns_to_go", "timesteps", "mask")


class Window:
    """The last ``length`` steps of every episode in a batch, laid out as offrl's
    training windows are: left-aligned from the episode's first step until
    ``length`` steps are known, then sliding.

    Returns-to-go start at ``target`` (the run's reward units) and fall by every
    reward received, scaled as the run scaled rewards (``scale * r + shift``).
    The leading shape of the batch (``[N]``, or ``[S, N]`` for seeds) is taken
    from the first observations after :meth:`reset`.
    """

    def __init__(self, length: int, action_dim: int, target: float, scale=1.0, shift=0.0):
        self.length = int(length)
        self.action_dim = int(action_dim)
        self.target = float(target)
        self.scale = float(scale)
        self.shift = float(shift)
        self.arrays: dict[str, np.ndarray] | None = None

    def reset(self) -> None:
        """New episodes start: the next observation begins empty windows."""
        self.arrays = None

    def _allocate(self, lead: tuple[int, ...], observation_dim: int) -> None:
        k = self.length
        self.arrays = {
            "observations": np.zeros((*lead, k, observation_dim), np.float32),
            "actions": np.zeros((*lead, k, self.action_dim), np.float32),
            "returns_to_go": np.zeros((*lead, k), np.float32),
            "timesteps": np.zeros((*lead, k), np.int32),
            "mask": np.zeros((*lead, k), np.float32),
        }
        self.steps = 0  # steps recorded; every row of the batch steps together
        self.next_return = np.full(lead, self.target, np.float32)

    def _position(self) -> int:
        return min(self.steps, self.length - 1)

    def observe(self, observations) -> dict[str, np.ndarray]:
        """Put the current observations ``[*lead, obs_dim]`` in the window; returns it."""
        observations = np.asarray(observations, np.float32)
        if self.arrays is None:
            self._allocate(observations.shape[:-1], observations.shape[-1])
        w, p = self.arrays, self._position()
        w["observations"][..., p, :] = observations
        w["returns_to_go"][..., p] = self.next_return
        w["timesteps"][..., p] = self.steps
        w["mask"][..., p] = 1.0
        return w

    def record(self, actions, rewards) -> None:
        """The actions just taken and the rewards they earned; the window slides once
        it is full."""
        if self.arrays is None:
            raise RuntimeError("record() before the first observation of the episode")
        w, p = self.arrays, self._position()
        w["actions"][..., p, :] = np.asarray(actions, np.float32)
        self.next_return = self.next_return - (
            self.scale * np.asarray(rewards, np.float32) + self.shift
        )
        self.steps += 1
        if self.steps >= self.length:  # slide: position K-1 is the next step's
            axis = w["mask"].ndim - 1  # the window's axis, after the batch's
            for values in w.values():
                steps = np.moveaxis(values, axis, 0)  # a view
                steps[:-1] = steps[1:].copy()
                steps[-1] = 0


class Policy:
    """An exported policy: ``policy(observations) -> actions`` in environment units.

    ``metadata`` holds what the file says about itself (algorithm, dataset, step,
    seed, spaces, offrl version, the filter inside it).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = 1):
        try:
            import onnxruntime as ort
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError(
                'offrl.deploy needs onnxruntime: pip install "offrl[deploy]" '
                "(or pip install onnxruntime numpy)"
            ) from error
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise ValueError(f"{path}: not a readable ONNX policy ({error})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ValueError(
                f"{path}: an ONNX file without offrl's metadata; export it with "
                "`offrl export RUN_DIR --format onnx`"
            )
        self.path = os.fspath(path)
        self.metadata = json.loads(props[METADATA_KEY])
        self.observation_dim = int(self.metadata["observation_dim"])
        self.action_dim = int(self.metadata["action_dim"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.window_length = self.metadata.get("window_length")
        self.window = None
        if self.window_length is not None:
            self.window = Window(
                self.window_length,
                self.action_dim,
                float(self.metadata.get("target_return_scaled") or 0.0),
                self.metadata.get("reward_scale", 1.0),
                self.metadata.get("reward_shift", 0.0),
            )

    def _check(self, observations: np.ndarray) -> None:
        if observations.ndim not in (1, 2) or observations.shape[-1] != self.observation_dim:
            raise ValueError(
                f"{self.path}: observations of shape {observations.shape}; the policy takes "
                f"[{self.observation_dim}] or [N, {self.observation_dim}]"
            )

    def __call__(self, observations) -> np.ndarray:
        """Actions ``[act_dim]`` for one observation, ``[N, act_dim]`` for a batch."""
        observations = np.asarray(observations, np.float32)
        self._check(observations)
        single = observations.ndim == 1
        batch = observations[None] if single else observations
        if self.window is None:
            feed = {self.inputs[0]: batch}
        else:
            if self.window.arrays is not None and (
                self.window.arrays["mask"].shape[0] != batch.shape[0]
            ):
                raise ValueError(
                    f"{self.path}: {batch.shape[0]} observations but the episodes in progress "
                    f"have {self.window.arrays['mask'].shape[0]}; call reset() first"
                )
            window = self.window.observe(batch)
            feed = {name: window[name] for name in WINDOW_INPUTS}
        actions = self.session.run(None, feed)[0]
        return actions[0] if single else actions

    def reset(self) -> None:
        """New episodes start (a sequence policy forgets its window)."""
        if self.window is not None:
            self.window.reset()

    def record(self, actions, rewards) -> None:
        """After a step: the actions taken and the rewards received (a sequence policy
        needs them; for any other policy this does nothing)."""
        if self.window is not None:
            actions = np.asarray(actions, np.float32)
            self.window.record(actions.reshape(-1, self.action_dim), np.reshape(rewards, -1))


def load_policy(path: str | os.PathLike, threads: int | None = 1) -> Policy:
    """The exported policy at ``path`` (``threads``: onnxruntime's intra-op threads;
    ``None`` lets onnxruntime choose)."""
    return Policy(path, threads)
