"""Learned dynamics models: a Gaussian ensemble fit with held-out elites, its
uncertainty penalties, branched model rollouts kept in an on-device buffer, and
planning to a goal with the cross-entropy method."""

from offrl.model import ensemble, planning, rollouts
from offrl.model.ensemble import PENALTIES, Ensemble, ModelSpec

__all__ = ["PENALTIES", "Ensemble", "ModelSpec", "ensemble", "planning", "rollouts"]
