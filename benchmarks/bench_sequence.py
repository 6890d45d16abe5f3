"""Training throughput of the sequence recipes: the book's configuration vs reviewlens', same data, same run.

    python benchmarks/bench_sequence.py [--data ../shared/data/aclImdb-labeled.tar.gz] [--reviews 2000]
                                        [--recipes lstm,bilstm-masked,transformer,...] [--backend tensorflow]

For each recipe, two fresh processes train one epoch on the same ``--reviews`` train reviews (a seeded
sample, the sequences fitted and padded as the recipe says): "book" pads every review to the full
length, uses the book's batch size and, for bilstm-onehot, 20,000-wide one-hot vectors; "reviewlens"
trains as ``reviewlens train`` does (length bucketing where the model masks the padding, the recipe's
batch size, one-hot LSTMs by row lookups). Throughput is reviews per second after the first batch
(so tracing is not counted); peak RSS is each process's own.
Bounded: one epoch on a sample, about 15 minutes for the default recipes on 2 cores (the book's one-hot
BiLSTM alone trains about 8 reviews/s and holds about 5.6 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"
DEFAULT_RECIPES = "lstm,sum-embedding,conv1d,bilstm-onehot,bilstm-embedding,bilstm-masked,transformer"


def sample(data: str, reviews: int, out: Path) -> None:
    """A seeded sample of the train split, as JSON lines, read once for every worker."""
    import numpy as np

    from reviewlens.data import Dataset

    texts, labels = Dataset(data).read("train")
    rows = np.random.default_rng(0).permutation(len(texts))[:reviews]
    out.write_text("".join(json.dumps({"text": texts[i], "label": labels[i]}) + "\n" for i in rows))


def worker(recipe_name: str, mode: str, subset: Path) -> dict[str, object]:
    """One epoch of one configuration, in this process; returns its measurements."""
    import keras
    import numpy as np

    from reviewlens.families import get_family
    from reviewlens.families.sequence import bucketed, bucketing
    from reviewlens.recipes import get_recipe
    from reviewlens.text.sequences import SequenceVectorizer

    recipe = get_recipe(recipe_name)
    records = [json.loads(line) for line in subset.read_text().splitlines()]
    texts = [record["text"] for record in records]
    vectorizer = SequenceVectorizer(**recipe.vectorizer).fit(texts)  # type: ignore[arg-type]
    x = vectorizer.transform(texts)
    y = np.array([record["label"] for record in records], np.float32)
    config = {k: v for k, v in recipe.model.items() if k != "pretrained"}
    if recipe.model.get("pretrained"):  # random frozen vectors: the speed is what is measured
        config["pretrained"] = np.random.default_rng(0).normal(size=(vectorizer.vocabulary_size, 100))
    if mode == "book" and recipe.family == "rnn" and config.get("embedding", 256) is None:
        config["dense_one_hot"] = True  # the book's 20,000-wide one-hot vectors, not the row lookups
    keras.utils.set_random_seed(0)
    model = get_family(recipe.family).build(vectorizer, config)  # type: ignore[attr-defined]
    model.compile(optimizer=recipe.optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    bucket = mode == "reviewlens" and bucketing(recipe, vectorizer, None)  # as `reviewlens train` decides
    batch_size = recipe.book_batch_size if mode == "book" else recipe.batch_size

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: object = None) -> None:
            if batch == 0:
                self.first = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.end = time.perf_counter()

    clock = Clock()
    if bucket:
        model.fit(bucketed(x, y, batch_size, seed=0), epochs=1, verbose=0, callbacks=[clock])
    else:
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[clock])
    measured = len(x) - batch_size  # the first batch (tracing) is not timed
    return {
        "recipe": recipe_name,
        "mode": mode,
        "backend": keras.config.backend(),
        "batch_size": batch_size,
        "bucketing": bucket,
        "length": vectorizer.length,
        "reviews_per_s": round(measured / (clock.end - clock.first), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="aclImdb directory or archive")
    parser.add_argument("--reviews", type=int, default=2000, help="train reviews per epoch")
    parser.add_argument("--recipes", default=DEFAULT_RECIPES)
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    parser.add_argument("--worker", nargs=3, metavar=("RECIPE", "MODE", "SUBSET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], Path(args.worker[2]))))
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-sequence-"))
    subset = scratch / "subset.jsonl"
    sample(args.data, args.reviews, subset)

    environment = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(
        f"{args.reviews:,} train reviews of {args.data}, 1 epoch each, {args.backend} backend, {os.cpu_count()} cores"
    )
    columns = f"{'book rev/s':>11} {'reviewlens rev/s':>17} {'speed-up':>9}  {'peak RSS MB':>12}"
    print(f"{'recipe':<18} {columns}  reviewlens trains with")
    for name in args.recipes.split(","):
        results = {}
        for mode in ("book", "reviewlens"):
            command = [sys.executable, __file__, "--worker", name, mode, str(subset)]
            done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
            if done.returncode != 0:
                sys.exit(f"{name} ({mode}) failed:\n{done.stderr[-3000:]}")
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        book, ours = results["book"], results["reviewlens"]
        how = f"batch {ours['batch_size']}" + (", length bucketing" if ours["bucketing"] else "")
        print(
            f"{name:<18} {book['reviews_per_s']:>11,.1f} {ours['reviews_per_s']:>17,.1f} "
            f"{ours['reviews_per_s'] / book['reviews_per_s']:>8.2f}x  "
            f"{max(book['peak_rss_mb'], ours['peak_rss_mb']):>12,}  {how}",
            flush=True,
        )
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
