"""Decision Mamba (lite): a return-conditioned selective state-space policy with a
self-evolving action target.

``offrl.algos.dt`` with ``backbone = "ssm"``: selective state-space blocks
(Mamba's S6, diagonal, input-dependent step and projections, computed by an
associative scan in JAX: :class:`offrl.nn.sequence.SelectiveSSM`) over the
``(R_t, s_t, a_t)`` tokens (fine grain) plus a step-level SSM whose summary of
the earlier steps is added to each step's tokens (coarse grain); and the
regression target ``(1 - b_k) a_t + b_k a_prev(t)``, where ``a_prev`` is the
prediction of a snapshot of the network refreshed every ``evolve_every``
updates and ``b_k`` grows linearly to ``evolve_weight`` over the run.

Defaults: DT's (CORL) for the shared settings, 3 blocks, state size 16,
``evolve_weight = 0.3``, a snapshot every 1000 updates. Deviations: the released
Decision Mamba needs Mamba's CUDA kernels; this is the same recurrence in JAX
(slower per token on a GPU, exact in value). Its coarse/fine layout, mix weight and
schedule are our reading of its abstract, not its released settings; report the
final and best scores (its paper reports the maximum over training).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from offrl.algos import dt

DEFAULT_REWARD_SCALING = dt.DEFAULT_REWARD_SCALING
REQUIRED_FIELDS = dt.REQUIRED_FIELDS
State = dt.State
init = dt.init
update = dt.update
act = dt.act
window_length = dt.window_length
history_length = dt.history_length
prepare_dataset = dt.prepare_dataset


@dataclasses.dataclass(frozen=True)
class Config(dt.Config):
    """Decision Mamba settings: DT's with the SSM backbone and self-evolution."""

    backbone: Literal["transformer", "ssm"] = "ssm"
    """Selective state-space blocks."""
    evolve_weight: float = 0.3
    """The final share of the previous iterate's action in the target."""
