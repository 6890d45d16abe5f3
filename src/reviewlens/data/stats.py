"""``reviewlens data info``: what a dataset holds, its lengths, duplicates and undecodable files."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from reviewlens.data.sources import Dataset

#: The column of ``DataInfo.reviews`` that counts unlabeled reviews (aclImdb's train/unsup, split unsup).
UNLABELED_COLUMN = "unlabeled"


@dataclass
class DataInfo:
    path: str
    labels: list[str]  # the label names, in their order ("unlabeled" last where the data has unlabeled reviews)
    reviews: dict[str, dict[str, int]]  # split -> {label name: n}, every label of every split
    words: dict[str, dict[str, float]]  # split -> {"mean", "median", "p95"}
    duplicates_within: dict[str, int]  # split -> reviews whose exact text appears earlier in it
    duplicates_across: dict[str, int]  # "train/test" ... -> distinct texts found in both
    empty: int
    undecodable: list[str]
    truncated: list[str]  # reviews cut at the dataset's max_review_bytes
    skipped: dict[str, str]  # files that are not readable reviews -> why
    warnings: list[str]  # rare labels, labels missing from test (``Dataset.warnings``)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def describe(dataset: Dataset, splits: tuple[str, ...] | None = None) -> DataInfo:
    """Count, measure and check every review of ``splits`` (one streaming pass per split): by default train,
    validation, test and the unlabeled reviews where there are some."""
    names = [*(dataset.label_names if dataset.labeled else ())]
    if splits is None:
        splits = ("train", "validation", "test") if dataset.labeled else ()
        splits += ("unsup",) if dataset.ids("unsup") else ()
    if "unsup" in splits:
        names.append(UNLABELED_COLUMN)
    reviews: dict[str, dict[str, int]] = {}
    words: dict[str, dict[str, float]] = {}
    within: dict[str, int] = {}
    hashes: dict[str, set[bytes]] = {}
    empty = 0
    for split in splits:
        lengths: list[int] = []
        seen: set[bytes] = set()
        counts = dict.fromkeys(names, 0)
        repeated = 0
        for example in dataset.examples(split):
            counts[names[example.label] if example.label >= 0 else UNLABELED_COLUMN] += 1
            lengths.append(len(example.text.split()))
            empty += not example.text.strip()
            key = hashlib.blake2b(example.text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            repeated += key in seen
            seen.add(key)
        reviews[split] = counts
        within[split] = repeated
        hashes[split] = seen
        array = np.asarray(lengths or [0])
        words[split] = {
            "mean": round(float(array.mean()), 1),
            "median": float(np.median(array)),
            "p95": float(np.percentile(array, 95)),
        }
    across = {f"{a}/{b}": len(hashes[a] & hashes[b]) for i, a in enumerate(splits) for b in splits[i + 1 :]}
    return DataInfo(
        path=str(dataset.path),
        labels=names,
        reviews=reviews,
        words=words,
        duplicates_within=within,
        duplicates_across=across,
        empty=empty,
        undecodable=list(dataset.read_report.undecodable),
        truncated=list(dataset.read_report.truncated),
        skipped=dict(dataset.read_report.skipped),
        warnings=dataset.warnings() if dataset.labeled else [],
    )
