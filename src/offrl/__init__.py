"""offrl: offline reinforcement learning, imitation learning and offline evaluation in JAX."""

__version__ = "0.1.0"
