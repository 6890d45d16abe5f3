"""IMDB review data: sources, the train / validation / test splits, download, the embedded sample.

Which dataset a command uses: ``--data PATH``, else ``$REVIEWLENS_DATA``, else the download cache,
else the small sample shipped inside the package.
"""

from __future__ import annotations

from reviewlens.data.download import cache_dir, download
from reviewlens.data.indexed import decode_review, load_indexed, vectorize_sequences
from reviewlens.data.labelled import labelled_file, read_labelled
from reviewlens.data.resolved import SAMPLE_ORIGIN, Resolved, fingerprint, resolve, sample_path, split_digest
from reviewlens.data.sources import LABEL_KINDS, MAX_REVIEW_BYTES, SPLITS, Dataset, Example, LabelKind
from reviewlens.data.stats import DataInfo, describe

__all__ = [
    "LABEL_KINDS",
    "MAX_REVIEW_BYTES",
    "SAMPLE_ORIGIN",
    "SPLITS",
    "DataInfo",
    "Dataset",
    "Example",
    "LabelKind",
    "Resolved",
    "cache_dir",
    "decode_review",
    "describe",
    "download",
    "fingerprint",
    "labelled_file",
    "load_indexed",
    "read_labelled",
    "resolve",
    "sample_path",
    "split_digest",
    "vectorize_sequences",
]
