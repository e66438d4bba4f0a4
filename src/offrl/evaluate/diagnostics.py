"""Training diagnostics from offline signals alone (Kumar et al., 2021, "A Workflow
for Offline Model-Free Robotic Reinforcement Learning").

The workflow watches two curves over training, both computable without an
environment:

* the **average dataset Q-value** ``E_D[Q(s, a)]``. If it rises and then falls,
  the critic is *overfitting*: stop near the peak (the checkpoint to deploy is
  the one near the peak) or regularize (fewer updates, critic LayerNorm; for CQL a larger
  alpha);
* the **TD error**. If it stays high, the critic is *underfitting*: give it more
  capacity (wider or deeper networks, or DR3-style regularization) or more
  updates.

offrl adds a third check the workflow takes for granted: a critic whose values
leave the range any return in the data allows (``max |r| / (1 - gamma)``) is
*diverging*.

:func:`diagnose` turns the curves into verdicts with a recommendation each.
The thresholds are stated as arguments; they are heuristics and the report
shows the curves beside the verdicts.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Verdict:
    """One diagnosis: a short ``kind`` (ok, overfitting, underfitting, diverging,
    not-converged, no-critic), a sentence naming what was seen, and what to do."""

    kind: str
    finding: str
    recommendation: str
    step: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    pad = window // 2
    padded = np.pad(values, pad, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")[: len(values)]


def diagnose(
    steps,
    q_mean=None,
    td_error=None,
    q_bound: float | None = None,
    drop_fraction: float = 0.1,
    rise_fraction: float = 0.1,
    td_relative_high: float = 0.25,
    td_stuck_ratio: float = 0.7,
    smooth: int = 3,
    still_moving: float = 0.1,
) -> list[Verdict]:
    """Verdicts from the average dataset Q and the TD error over training.

    Args:
        steps: training steps of the points, ``[T]``.
        q_mean: average dataset Q-value at each step, ``[T]`` (``None``: no critic).
        td_error: mean absolute TD error at each step, ``[T]``.
        q_bound: the largest |Q| the data allows (``max |r| / (1 - gamma)``, in
            the critic's reward units); ``None`` skips the divergence check.
        drop_fraction: overfitting when the final Q is below the peak by more than
            this fraction of the peak's rise above the start (and of |peak|).
        rise_fraction: the rise before the peak must exceed this fraction of |peak|.
        td_relative_high: underfitting when the final TD error exceeds this
            fraction of the final mean |Q| ...
        td_stuck_ratio: ... and has not fallen below this fraction of its early level.
        smooth: moving-average window applied before looking for the peak.
        still_moving: "not converged" when the Q-value changed by more than this
            fraction of its final value over the last fifth of the points.
    """
    steps = np.asarray(steps, dtype=np.int64)
    if q_mean is None:
        return [
            Verdict(
                "no-critic",
                "this algorithm has no critic, so there is no Q trend to read",
                "select checkpoints by FQE or by the validation action error",
            )
        ]
    q = np.asarray(q_mean, dtype=np.float64)
    if len(q) != len(steps):
        raise ValueError(f"q_mean has {len(q)} points but steps has {len(steps)}")
    finite = np.isfinite(q)
    verdicts: list[Verdict] = []
    if not finite.all():
        first_bad = int(steps[np.argmin(finite)])
        return [
            Verdict(
                "diverging",
                f"the dataset Q-value is not finite from step {first_bad} on",
                "lower the critic learning rate, add LayerNorm to the critic "
                "(--critic-layer-norm), or clip gradients; "
                "use a checkpoint before that step",
                first_bad,
            )
        ]
    if q_bound is not None and len(q):
        over = np.abs(q) > q_bound
        if over.any():
            first = int(np.argmax(over))
            verdicts.append(
                Verdict(
                    "diverging",
                    f"the dataset Q-value ({q[first]:.3g}) exceeds the largest value any "
                    f"return in the data allows ({q_bound:.3g}) from step {steps[first]} on",
                    "the critic extrapolates: lower its learning rate, add LayerNorm "
                    "(--critic-layer-norm), or make "
                    "the algorithm more conservative (larger CQL alpha, smaller TD3+BC alpha)",
                    int(steps[first]),
                )
            )
    if len(q) >= 3:
        qs = _smooth(q, smooth)
        peak = int(np.argmax(qs))
        rise = qs[peak] - qs[0]
        drop = qs[peak] - qs[-1]
        scale = max(abs(qs[peak]), 1e-8)
        if (
            peak < len(qs) - 1
            and rise > rise_fraction * scale
            and drop > drop_fraction * max(rise, scale)
        ):
            verdicts.append(
                Verdict(
                    "overfitting",
                    f"the dataset Q-value rose to {qs[peak]:.3g} at step {steps[peak]} and "
                    f"then fell by {100 * drop / scale:.0f}% to {qs[-1]:.3g}",
                    f"deploy a checkpoint near step {steps[peak]} (the Q peak), or regularize: "
                    "fewer updates, LayerNorm in the critic (--critic-layer-norm), or a larger "
                    "CQL alpha",
                    int(steps[peak]),
                )
            )
    if len(q) >= 3 and not any(v.kind == "overfitting" for v in verdicts):
        tail = max(2, len(q) // 5 + 1)
        recent = q[-1] - q[-tail]
        if abs(recent) > still_moving * max(abs(q[-1]), 1e-8):
            verdicts.append(
                Verdict(
                    "not-converged",
                    f"the dataset Q-value still moves by {100 * abs(recent) / abs(q[-1]):.0f}% "
                    f"over the last {tail - 1} interval(s) (to {q[-1]:.3g} at step {steps[-1]})",
                    "train longer before trusting the curve; until then the latest checkpoint "
                    "is the workflow's choice",
                    int(steps[-1]),
                )
            )
    if td_error is not None:
        td = np.asarray(td_error, dtype=np.float64)
        if len(td) != len(steps):
            raise ValueError(f"td_error has {len(td)} points but steps has {len(steps)}")
        if len(td) >= 2 and np.isfinite(td).all():
            early = td[: max(1, len(td) // 5)].mean()
            final = td[-max(1, len(td) // 5) :].mean()
            relative = final / max(abs(q[-1]), 1e-8)
            if relative > td_relative_high and final > td_stuck_ratio * early:
                verdicts.append(
                    Verdict(
                        "underfitting",
                        f"the TD error stays high: {final:.3g} at the end ({100 * relative:.0f}% "
                        f"of |Q|), {100 * final / max(early, 1e-12):.0f}% of its early level",
                        "give the critic more capacity (wider or deeper layers), train longer, "
                        "or lower its learning rate; DR3 regularization is the workflow's remedy",
                    )
                )
    if not verdicts:
        verdicts.append(
            Verdict(
                "ok",
                "the dataset Q-value has not fallen from a peak and the TD error is low",
                "no sign of over- or underfitting; the latest checkpoint is a sound choice",
                int(steps[-1]) if len(steps) else None,
            )
        )
    return verdicts
