"""Algorithms, one file each; see :mod:`offrl.core.registry` for the contract."""
