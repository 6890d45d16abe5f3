"""Which dataset a command uses, and the digests that say which data a model was trained on.

``--data PATH``, else ``$REVIEWLENS_DATA``, else the download cache, else the small sample shipped inside the
package.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reviewlens.data.download import ACLIMDB_FILENAME, cache_dir
from reviewlens.data.sources import MAX_REVIEW_BYTES, Dataset, LabelKind

SAMPLE_FILENAME = "imdb_sample.tar.gz"
#: ``Resolved.origin`` (and a run's ``data.origin``) of the embedded sample.
SAMPLE_ORIGIN = "embedded sample"


def sample_path() -> Path:
    """The embedded sample: about 2,000 train and 1,000 test aclImdb reviews, balanced."""
    return Path(str(resources.files("reviewlens.data").joinpath(SAMPLE_FILENAME)))


@dataclass(frozen=True)
class Resolved:
    dataset: Dataset
    origin: str  # "--data", "$REVIEWLENS_DATA", "download cache" or SAMPLE_ORIGIN

    def describe(self) -> str:
        return f"data: {self.dataset.path} ({self.origin})"


def resolve(
    path: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    max_review_bytes: int = MAX_REVIEW_BYTES,
    labels: LabelKind = "sentiment",
) -> Resolved:
    """The dataset a command should use, and where the choice came from.

    The dataset's catalog is read and checked here, so a bad source fails before any work starts. A review
    longer than ``max_review_bytes`` is cut there (``Dataset.read_report`` counts it). ``labels`` is what an aclImdb
    review's label is: its sentiment, or its rating (``--labels rating``).
    """
    env = os.environ.get("REVIEWLENS_DATA")
    cached = cache_dir(cache) / ACLIMDB_FILENAME
    if path is not None:
        resolved = Resolved(Dataset(path, max_review_bytes=max_review_bytes, labels=labels), "--data")
    elif env:
        resolved = Resolved(Dataset(env, max_review_bytes=max_review_bytes, labels=labels), "$REVIEWLENS_DATA")
    elif cached.is_file():
        resolved = Resolved(Dataset(cached, max_review_bytes=max_review_bytes, labels=labels), "download cache")
    else:
        resolved = Resolved(Dataset(sample_path(), max_review_bytes=max_review_bytes, labels=labels), SAMPLE_ORIGIN)
    resolved.dataset.counts()
    return resolved


def split_digest(texts: list[str], labels: list[int]) -> bytes:
    """A content hash of one split's texts and labels, in order."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(len(texts)).encode())
    for text, label in zip(texts, labels, strict=True):
        digest.update(b"%d\x00%d\x00" % (label, len(text)))
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def fingerprint(*digests: bytes) -> str:
    """A short hash of the splits' digests, to tell which data a model was trained on."""
    return hashlib.blake2b(b"".join(digests), digest_size=16).hexdigest()
