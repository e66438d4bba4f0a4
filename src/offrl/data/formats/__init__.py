"""File formats: the only code that knows how a dataset is laid out on disk."""

from offrl.data.formats.hdf5 import read_d4rl_hdf5, read_robomimic_hdf5, robomimic_observation_keys
from offrl.data.formats.minari import minari_root, read_minari, write_minari

__all__ = [
    "minari_root",
    "read_d4rl_hdf5",
    "read_minari",
    "read_robomimic_hdf5",
    "robomimic_observation_keys",
    "write_minari",
]
