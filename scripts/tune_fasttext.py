"""Choose the fasttext recipe's settings on the validation split only (the test split is never read).

    python scripts/tune_fasttext.py --data DIR [--vocabulary 100001,200001] [--dim 10,20] [--rate 0.01,0.02]
        [--batch 64] [--epochs 5,10]

Vectorizes train and validation once per vocabulary size, then trains ``models.fasttext.FastText`` for
every combination and prints, per combination, the best epoch's validation accuracy (as ``BestEpoch``
chooses it) and the fitting time, one JSON line each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from scipy.special import expit

from reviewlens.data import Dataset
from reviewlens.evaluation import metrics
from reviewlens.models.fasttext import FastText
from reviewlens.text import BagOfWords


def _numbers(text: str, kind: type) -> list:
    return [None if item == "all" else kind(item) for item in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--vocabulary", default="200001")
    parser.add_argument("--dim", default="10")
    parser.add_argument("--rate", default="0.01")
    parser.add_argument("--batch", default="64")
    parser.add_argument("--epochs", default="5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    splits = Dataset(args.data).read_splits("train", "validation")
    (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
    order = np.random.default_rng(args.seed).permutation(len(train_texts))  # as the bag-of-words family does
    y_train = np.asarray(train_labels, np.float32)[order]
    y_val = np.asarray(val_labels, np.float32)
    for vocabulary in _numbers(args.vocabulary, int):
        started = time.perf_counter()
        vectorizer = BagOfWords(vocabulary, ngrams=2, output_mode="mean", standardize="lower_and_split_punctuation")
        x_train = vectorizer.fit_transform([train_texts[i] for i in order])
        x_val = vectorizer.transform(val_texts)
        vectorize_s = time.perf_counter() - started
        grid = itertools.product(
            _numbers(args.dim, int), _numbers(args.rate, float), _numbers(args.batch, int), _numbers(args.epochs, int)
        )
        for dim, rate, batch, epochs in grid:
            started = time.perf_counter()
            model = FastText(x_train.shape[1], dim=dim, learning_rate=rate, seed=args.seed)
            curve = []
            for _ in model.fit_epochs(x_train, y_train, epochs, batch):
                scores = metrics(expit(model.logits(x_val)).astype(np.float32), y_val)
                curve.append((float(scores["accuracy"]), -float(scores["loss"])))  # type: ignore[arg-type]
            best = max(range(len(curve)), key=curve.__getitem__)
            print(
                json.dumps(
                    {
                        "vocabulary": len(vectorizer.vocabulary),
                        "dim": dim,
                        "rate": rate,
                        "batch": batch,
                        "epochs": epochs,
                        "best_epoch": best + 1,
                        "val_accuracy": round(curve[best][0], 4),
                        "val_curve": [round(a, 4) for a, _ in curve],
                        "fit_s": round(time.perf_counter() - started, 1),
                        "vectorize_s": round(vectorize_s, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
