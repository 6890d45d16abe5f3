"""Bag-of-bigrams, end to end: the Keras book's pipeline vs `reviewlens train` vs fastText.

    python benchmarks/bench_bow_bigram.py [--archive ../shared/data/aclImdb-labeled.tar.gz] [--repeat 3]

Each contender runs as a fresh process on the same freshly unpacked aclImdb directory, timed from
process start to exit (imports included); rounds interleave the contenders and the summary gives
medians. Printed: wall time, test accuracy, the ratio to the book's time, and the batch prediction
rate over the 25,000 test reviews (the book: its `model.evaluate`; reviewlens: the saved run,
NumPy and Keras runtimes; fastText: `predict` on the list). fastText needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"
CONTENDERS = ("book", "reviewlens", "fasttext")


# -- the contenders, each run in its own process: `--worker NAME --dir DIR` ----------------------


def book(directory: Path, scratch: Path) -> dict[str, float]:
    """Deep Learning with Python, 2nd ed., chapter 11: the bag-of-bigrams model, as written there."""
    import keras
    from keras import layers

    base_dir = directory
    val_dir = base_dir / "val"
    train_dir = base_dir / "train"
    for category in ("neg", "pos"):
        os.makedirs(val_dir / category)
        files = os.listdir(train_dir / category)
        random.Random(1337).shuffle(files)
        num_val_samples = int(0.2 * len(files))
        val_files = files[-num_val_samples:]
        for fname in val_files:
            shutil.move(train_dir / category / fname, val_dir / category / fname)

    batch_size = 32
    train_ds = keras.utils.text_dataset_from_directory(base_dir / "train", batch_size=batch_size)
    val_ds = keras.utils.text_dataset_from_directory(base_dir / "val", batch_size=batch_size)
    test_ds = keras.utils.text_dataset_from_directory(base_dir / "test", batch_size=batch_size)

    text_vectorization = layers.TextVectorization(ngrams=2, max_tokens=20000, output_mode="multi_hot")
    text_only_train_ds = train_ds.map(lambda x, y: x)
    text_vectorization.adapt(text_only_train_ds)
    binary_2gram_train_ds = train_ds.map(lambda x, y: (text_vectorization(x), y), num_parallel_calls=4)
    binary_2gram_val_ds = val_ds.map(lambda x, y: (text_vectorization(x), y), num_parallel_calls=4)
    binary_2gram_test_ds = test_ds.map(lambda x, y: (text_vectorization(x), y), num_parallel_calls=4)

    inputs = keras.Input(shape=(20000,))
    x = layers.Dense(16, activation="relu")(inputs)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    checkpoint = str(scratch / "binary_2gram.keras")
    callbacks = [keras.callbacks.ModelCheckpoint(checkpoint, save_best_only=True)]
    model.fit(
        binary_2gram_train_ds.cache(),
        validation_data=binary_2gram_val_ds.cache(),
        epochs=10,
        callbacks=callbacks,
        verbose=2,
    )
    model = keras.models.load_model(checkpoint)
    started = time.perf_counter()
    accuracy = model.evaluate(binary_2gram_test_ds, verbose=0)[1]
    evaluate_s = time.perf_counter() - started
    return {"test_accuracy": float(accuracy), "predict_per_s": 25000 / evaluate_s, "predict_s": evaluate_s}


def reviewlens(directory: Path, scratch: Path) -> dict[str, float]:
    """`reviewlens train --recipe bow-bigram`, exactly as a user runs it."""
    command = [str(Path(sys.executable).with_name("reviewlens")), "train", "--recipe", "bow-bigram",
               "--data", str(directory), "--out", str(scratch / "run"), "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    metadata = json.loads(result.stdout)
    return {"test_accuracy": metadata["test_accuracy"], **{k: v for k, v in metadata["timings"].items()}}


def reviewlens_predict(directory: Path, run: Path) -> dict[str, float]:
    """The saved run's batch prediction rate over the 25,000 test reviews (texts already read)."""
    import reviewlens
    from reviewlens.data import Dataset

    texts, _ = Dataset(directory).read("test")
    rates = {}
    for runtime in ("numpy", "keras"):
        model = reviewlens.load(run, runtime=runtime)  # type: ignore[arg-type]
        model.predict(texts[:100])  # warm up
        times = []
        for _ in range(3):
            started = time.perf_counter()
            model.predict(texts)
            times.append(time.perf_counter() - started)
        rates[f"predict_{runtime}_per_s"] = len(texts) / statistics.median(times)
    return rates


_PUNCTUATION = re.compile(r"([!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~'])")


def _fasttext_line(text: str) -> str:
    text = text.replace("<br />", " ").lower()
    return " ".join(_PUNCTUATION.sub(r" \1 ", text).split())


def fasttext(directory: Path, scratch: Path) -> dict[str, float]:
    """fastText supervised: 2 threads, word bigrams, 10 epochs, on all 25,000 train reviews, shuffled."""
    import fasttext as ft

    started = time.perf_counter()

    def read(split: str) -> list[tuple[str, str]]:
        rows = []
        for category in ("neg", "pos"):
            folder = directory / split / category
            for name in sorted(os.listdir(folder)):
                with open(folder / name, encoding="utf-8") as handle:
                    rows.append((category, _fasttext_line(handle.read())))
        return rows

    train = read("train")
    random.Random(0).shuffle(train)
    train_file = scratch / "train.txt"
    train_file.write_text("".join(f"__label__{label} {text}\n" for label, text in train), encoding="utf-8")
    test = read("test")
    prepare_s = time.perf_counter() - started
    model = ft.train_supervised(input=str(train_file), epoch=10, wordNgrams=2, thread=2, verbose=0)
    train_s = time.perf_counter() - started - prepare_s
    predict_started = time.perf_counter()
    labels, _ = model.predict([text for _, text in test])
    predict_s = time.perf_counter() - predict_started
    correct = sum(predicted[0] == f"__label__{label}" for predicted, (label, _) in zip(labels, test, strict=True))
    return {
        "test_accuracy": correct / len(test),
        "prepare_s": prepare_s,
        "train_s": train_s,
        "predict_s": predict_s,
        "predict_per_s": len(test) / predict_s,
    }


WORKERS = {"book": book, "reviewlens": reviewlens, "fasttext": fasttext}


# -- the harness --------------------------------------------------------------------------------


def unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "aclImdb"


def run_contender(name: str, archive: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as scratch_name:
        scratch = Path(scratch_name)
        directory = unpack(archive, scratch / "data")
        subprocess.run(["sync"], check=False)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--dir", str(directory), "--scratch", str(scratch)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        if name == "reviewlens":
            figures |= reviewlens_predict_in_process(directory, scratch / "run")
        return {"wall_s": wall, **figures}


def reviewlens_predict_in_process(directory: Path, run: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", "reviewlens-predict", "--dir", str(directory), "--scratch", str(run)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--worker", choices=[*WORKERS, "reviewlens-predict"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "reviewlens-predict":
        print(json.dumps(reviewlens_predict(args.dir, args.scratch)))
        return
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        print(json.dumps(WORKERS[args.worker](args.dir, args.scratch)))
        return

    if not args.archive.is_file():
        raise SystemExit(f"{args.archive} not found; pass --archive with the aclImdb labeled archive")
    print(f"machine: {os.cpu_count()} cores; data: {args.archive}; rounds: {args.repeat}", flush=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.only}
    for round_number in range(args.repeat):
        order = args.only[round_number % len(args.only) :] + args.only[: round_number % len(args.only)]
        for name in order:
            figures = run_contender(name, args.archive)
            results[name].append(figures)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
            print(f"round {round_number + 1} {name}: {shown}", flush=True)

    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in results.get(name, []) if key in r]
        return statistics.median(values) if values else None

    book_wall = median("book", "wall_s")
    print("\nmedians over rounds")
    print(f"{'contender':<12} {'wall s':>8} {'x book':>7} {'test acc':>9} {'predict reviews/s':>18}")
    for name in args.only:
        wall, accuracy = median(name, "wall_s"), median(name, "test_accuracy")
        rate = median(name, "predict_numpy_per_s") or median(name, "predict_per_s")
        ratio = f"{wall / book_wall:.2f}" if book_wall and wall else "-"
        print(f"{name:<12} {wall:>8.1f} {ratio:>7} {accuracy:>9.4f} {rate:>18,.0f}")
    keras_rate = median("reviewlens", "predict_keras_per_s")
    if keras_rate:
        print(f"reviewlens saved .keras model through Keras: {keras_rate:,.0f} reviews/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
