"""How the linear family should learn more than two labels: one softmax over one-vs-rest NB ratios, or one-vs-rest.

    python benchmarks/bench_ratings_linear.py [--data ../shared/data/aclImdb-labeled.tar.gz]
        [--recipes nbsvm,nbsvm-plus]

On aclImdb's ratings (``--labels rating``: 8 labels) it vectorizes train and validation once with each recipe's
vectorizer, then fits, with the recipe's settings and epochs, ``NBSoftmax`` with
``loss="softmax"`` and ``loss="one-vs-rest"`` (each rating's column its own logistic model against the rest). It prints
validation accuracy, macro-F1, the mean absolute error of the predicted rating and the log-loss of the softmax of
the logits (what a run answers) at the best epoch (and beta) of each, chosen by validation accuracy as the family
chooses: validation only (the test split is not read).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from reviewlens.data import resolve
from reviewlens.evaluation import metrics
from reviewlens.models.nb_linear import NBSoftmax, interpolated, nb_ratios_per_label
from reviewlens.recipes import get_recipe
from reviewlens.text import BagOfWords

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"


def figures(probabilities: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> tuple[float, float, float, float]:
    """Accuracy, macro-F1, the mean absolute error of the predicted rating, and the log-loss."""
    scores = metrics(probabilities, labels, names=names)
    ratings = np.array([int(name) for name in names])
    mae = float(np.mean(np.abs(ratings[np.argmax(probabilities, axis=1)] - ratings[labels])))
    return float(scores["accuracy"]), float(scores["macro_f1"]), mae, float(scores["loss"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--recipes", default="nbsvm,nbsvm-plus")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    dataset = resolve(args.data, labels="rating").dataset
    names = dataset.label_names
    splits = dataset.read_splits("train", "validation")
    (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
    y_train, y_val = np.asarray(train_labels, np.int64), np.asarray(val_labels, np.int64)
    print(f"{len(train_texts):,} train, {len(val_texts):,} validation reviews; labels {', '.join(names)}")
    print("| recipe | loss | validation accuracy | macro-F1 | MAE | log-loss | best epoch, beta | fit s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name in args.recipes.split(","):
        recipe = get_recipe(name)
        config: dict[str, Any] = dict(recipe.model)
        vectorizer = BagOfWords(**recipe.vectorizer)  # type: ignore[arg-type]
        order = np.random.default_rng(args.seed).permutation(len(train_texts))
        x_train = vectorizer.fit_transform([train_texts[i] for i in order])
        x_val, y = vectorizer.transform(val_texts), y_train[order]
        settings: dict[str, Any] = {
            "shift": float(config.get("shift", 0.0)), "scale": float(config.get("scale", 1.0)),
            "init": float(config.get("init", 0.0)), "learning_rate": recipe.learning_rate,
            "weight_decay": float(config.get("weight_decay", 0.0)), "seed": args.seed,
        }  # fmt: skip
        alpha, betas = float(config.get("alpha", 1.0)), [float(b) for b in config.get("betas", [1.0])]

        ratios = nb_ratios_per_label(x_train, y, len(names), alpha)
        ratios[0] = 0.0
        for loss in ("softmax", "one-vs-rest"):
            started = time.perf_counter()
            model = NBSoftmax(ratios, loss=loss, **settings)
            best: tuple[tuple[float, float, float, float], str] | None = None
            for epoch, _ in enumerate(model.fit_epochs(x_train, y, recipe.epochs, recipe.batch_size), start=1):
                for beta in betas:
                    kernel = model.kernel(interpolated(model.w, beta)) if beta != 1.0 else model.kernel()
                    found = figures(softmax(model.logits(x_val, kernel), axis=1), y_val, names)
                    if best is None or found[0] > best[0][0]:
                        best = (found, f"{epoch}, {beta}")
            assert best is not None
            (accuracy, f1, mae, log_loss), chosen = best
            print(
                f"| {name} | {loss} | {accuracy:.2%} | {f1:.3f} | {mae:.2f} | {log_loss:.3f} | {chosen} | "
                f"{time.perf_counter() - started:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
