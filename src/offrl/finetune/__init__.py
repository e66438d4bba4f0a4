"""Offline-to-online fine-tuning: the mixed replay and the shared online loop."""

from offrl.data.returns import returns_to_go
from offrl.finetune.buffer import MixedReplay
from offrl.finetune.loop import FinetuneConfig, finetune, online_metrics

__all__ = ["FinetuneConfig", "MixedReplay", "finetune", "online_metrics", "returns_to_go"]
