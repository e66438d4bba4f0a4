"""Run directories, loggers and checkpoints."""
