"""SAC-N (An et al. 2021): SAC with N critics and the minimum over all of them, as
CORL's ``sac_n.py`` runs it: EDAC without the diversity term (``offrl.algos.edac``
with ``eta = 0``; its losses and update are EDAC's).

Defaults are CORL's: N = 10, 3x256 networks, Adam 3e-4, gamma 0.99, tau 0.005,
initial alpha 1, target entropy -|A|, batch 256; the per-dataset N of its configs
are in :data:`PRESETS` (Hopper-medium: 500). Deviations: EDAC's (the policy's
log-std clip, flax initializers).
"""

from __future__ import annotations

import dataclasses

from offrl.algos import edac

DEFAULT_REWARD_SCALING = "none"
State = edac.State
init = edac.init
act = edac.act
update = edac.update

#: CORL's per-dataset num_critics, by the suite's dataset names.
PRESETS = {
    "halfcheetah-medium": 10,
    "halfcheetah-medium-replay": 10,
    "halfcheetah-medium-expert": 10,
    "hopper-medium": 500,
    "hopper-medium-replay": 200,
    "hopper-medium-expert": 200,
    "walker2d-medium": 20,
    "walker2d-medium-replay": 20,
    "walker2d-medium-expert": 20,
}


@dataclasses.dataclass(frozen=True)
class Config(edac.Config):
    """SAC-N settings (CORL's defaults)."""

    eta: float = 0.0
    """No gradient-diversity term (that is EDAC)."""

    @classmethod
    def preset(cls, dataset: str, **overrides) -> Config:
        """CORL's N for a suite dataset."""
        name = dataset.removeprefix("suite:")
        if name not in PRESETS:
            raise KeyError(f"no SAC-N preset for '{dataset}'; presets: {', '.join(PRESETS)}")
        return cls(num_critics=PRESETS[name], **overrides)
