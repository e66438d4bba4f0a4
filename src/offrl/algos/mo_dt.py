"""MO-DT: the Decision Transformer with multi-objective heads and action-region tokens.

``offrl.algos.dt`` with its MO-DT options on: the action token also predicts the
next observation and the next return-to-go, ``L = L_a + w_s L_s + w_R L_R``, and
a region token (each action coordinate's interval among ``M`` equal parts of
``[-1, 1]``) sits between the state and action tokens, classified from the state
token (``+ w_c`` cross-entropy) and read for the action; see :mod:`offrl.algos.dt`
for the losses and the two-pass action at evaluation.

Defaults: DT's (CORL), with ``w_s = w_R = 1``, ``M = 5`` regions, ``w_c = 0.1``.
Deviation: MO-DT's code was not read; the weights, the region count and the token
layout are our reading of its abstract, not its released settings.
"""

from __future__ import annotations

import dataclasses

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
    """MO-DT settings: DT's plus the heads and region tokens."""

    state_loss_weight: float = 1.0
    """Weight of the next-observation prediction loss."""
    return_loss_weight: float = 1.0
    """Weight of the next return-to-go prediction loss."""
    action_regions: int = 5
    """Regions per action dimension."""
    region_loss_weight: float = 0.1
    """Weight of the region classification loss."""
