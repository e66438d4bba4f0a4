"""Learned dynamics models: a Gaussian ensemble fit with held-out elites, its
uncertainty penalties, and branched model rollouts kept in an on-device buffer."""

from offrl.model import ensemble, rollouts
from offrl.model.ensemble import PENALTIES, Ensemble, ModelSpec

__all__ = ["PENALTIES", "Ensemble", "ModelSpec", "ensemble", "rollouts"]
