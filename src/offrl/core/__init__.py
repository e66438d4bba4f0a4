"""The core: the algorithm registry, train-state helpers and the scanned trainer."""
