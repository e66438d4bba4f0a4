"""Data quality and curation: scores of a dataset's episodes, subsets and weights from them."""
