"""Evaluation: vectorized rollouts, normalized scores and statistics."""

from offrl.evaluate.rollout import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
