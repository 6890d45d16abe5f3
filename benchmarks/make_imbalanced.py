"""An imbalanced variant of aclImdb, and what class weights and a validation-chosen threshold do on it.

    python benchmarks/make_imbalanced.py --out imdb-10neg.jsonl [--archive ../shared/data/aclImdb-labeled.tar.gz]
        [--negative-share 0.1] [--measure bow-bigram,nbsvm --runs runs/imbalanced]

Writes JSON lines (``text``, ``label``, ``split``) with every positive review of each split and a random
``--negative-share`` of negative ones (10%: 1,389 negative beside 12,500 positive reviews in train, the same in
test), chosen with ``random.Random(1337)`` over the reviews in reading order: the same file every time.
``--measure`` then trains each recipe four ways on it (plain, ``--threshold best-f1``, ``--class-weight
balanced``, and both) and prints a Markdown table of test accuracy, macro-F1, negative-class recall and PR AUC,
with the commands.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"
SETTINGS: dict[str, dict[str, str]] = {
    "plain": {},
    "best-f1": {"threshold": "best-f1"},
    "balanced": {"class_weight": "balanced"},
    "balanced + best-f1": {"class_weight": "balanced", "threshold": "best-f1"},
}


def write_imbalanced(archive: Path, out: Path, negative_share: float, seed: int = 1337) -> dict[str, dict[int, int]]:
    """Write the variant; return its reviews per split and label."""
    from reviewlens.data import Dataset

    dataset = Dataset(archive)
    parts = dataset.read_splits("train", "validation")  # aclImdb's train split, as reviewlens holds it out
    splits = {
        "train": (parts["train"][0] + parts["validation"][0], parts["train"][1] + parts["validation"][1]),
        "test": dataset.read("test"),
    }
    rng = random.Random(seed)
    counts: dict[str, dict[int, int]] = {}
    with open(out, "w", encoding="utf-8") as handle:
        for split, (texts, labels) in splits.items():
            positive = [i for i, label in enumerate(labels) if label == 1]
            negative = [i for i, label in enumerate(labels) if label == 0]
            keep = round(len(positive) * negative_share / (1 - negative_share))
            kept = sorted(positive + rng.sample(negative, keep))
            for i in kept:
                handle.write(json.dumps({"text": texts[i], "label": labels[i], "split": split}) + "\n")
            counts[split] = {0: keep, 1: len(positive)}
    return counts


def measure(data: Path, recipes: list[str], runs: Path) -> str:
    """Train each recipe in each setting; a Markdown table of their test figures and the commands."""
    from reviewlens.training import train

    rows = [
        "| recipe | setting | threshold | test accuracy | macro-F1 | negative recall | negative PR AUC | "
        "positive PR AUC | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    commands = []
    for recipe in recipes:
        for name, setting in SETTINGS.items():
            out = runs / f"{recipe}-{name.replace(' + ', '-')}"
            flags = "".join(f" --{key.replace('_', '-')} {value}" for key, value in setting.items())
            commands.append(f"reviewlens train --recipe {recipe} --data {data} --out {out}{flags}")
            started = time.perf_counter()
            metadata = train(recipe, data, out, **setting).metadata  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            test = metadata.metrics["test"]
            negative = test["per_label"]["negative"]
            rows.append(
                f"| `{recipe}` | {name} | {metadata.threshold:.3f} | {test['accuracy']:.2%} | {test['macro_f1']:.4f} | "
                f"{negative['recall']:.4f} | {negative['average_precision']:.4f} | {test['average_precision']:.4f} | "
                f"{seconds:.0f} |"
            )
            print(rows[-1], flush=True)
    return "\n".join(rows) + "\n\n```sh\n" + "\n".join(commands) + "\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    parser.add_argument("--negative-share", type=float, default=0.1)
    parser.add_argument("--measure", help="recipes to train on it, comma-separated")
    parser.add_argument("--runs", type=Path, default=Path("runs/imbalanced"))
    args = parser.parse_args()
    if not 0 < args.negative_share < 0.5:
        parser.error(f"--negative-share {args.negative_share} must be above 0 and below 0.5")
    counts = write_imbalanced(args.archive, args.out, args.negative_share)
    print(f"wrote {args.out}: " + ", ".join(f"{s} {c[0]:,} negative + {c[1]:,} positive" for s, c in counts.items()))
    if args.measure:
        print(measure(args.out, [r.strip() for r in args.measure.split(",") if r.strip()], args.runs))


if __name__ == "__main__":
    main()
