"""Named subsets of a dataset's episodes, stored with the dataset (robomimic's filter keys).

A dataset carries its subsets in ``info.subsets`` (read by every loader) and
``load_dataset(spec, filter_key=KEY)`` selects one. Where each format keeps them:

- robomimic-style HDF5: ``mask/<key>``, an array of demo names (``b"demo_3"``), as
  robomimic writes and reads them (``train.hdf5_filter_key``).
- D4RL-style HDF5: ``mask/<key>``, an array of episode indices (episodes in the order
  offrl reads them); the group is offrl's, D4RL has none.
- Minari dataset directories (and the built-in suite's cache): ``offrl_subsets.json``
  beside ``metadata.json``, which Minari itself ignores; ``offrl data convert`` carries
  the subsets of any source into it.

Writing never edits a file in place: the new file is written beside the old one and
renamed over it, so an interrupted write leaves the dataset as it was.
"""

from __future__ import annotations

import pathlib

from offrl.data.dataset import Dataset
from offrl.data.formats.hdf5 import write_hdf5_masks
from offrl.data.formats.minari import write_subsets_file
from offrl.data.validate import DatasetError


def write_subsets(dataset: Dataset, subsets: dict) -> Dataset:
    """Store named subsets (``name -> episode indices``) with the dataset on disk and
    return the dataset with them; a subset of an existing name is replaced.

    ``dataset`` must be the whole dataset as loaded (not a subset of it), so that its
    episode indices are those of the stored data.
    """
    if dataset.info.filter_key is not None:
        raise DatasetError(
            f"was loaded as its subset '{dataset.info.filter_key}'; subsets are written "
            "for the whole dataset",
            field="filter_key",
            source=dataset.info.source,
            fix="load the dataset without a filter key",
        )
    try:
        updated = dataset.with_subsets(subsets)
    except ValueError as error:
        raise DatasetError(str(error), field="subsets", source=dataset.info.source) from error
    written = {name: ids for name, ids in updated.info.subsets if name in subsets}
    location = pathlib.Path(dataset.info.location)
    if location.is_file() and location.suffix in (".hdf5", ".h5"):
        write_hdf5_masks(location, written)
    elif location.is_dir() and (location / "metadata.json").exists():
        write_subsets_file(location, updated)
    else:
        raise DatasetError(
            "is not a file or Minari directory offrl can store subsets in",
            field="subsets",
            source=str(location) if str(location) not in ("", ".") else dataset.info.name,
            fix="convert it first (offrl data convert DATASET OUT), then write subsets to OUT",
        )
    return updated
