"""The fast recipes against scikit-learn's references, in and out of domain (issue 14).

    python benchmarks/bench_fast.py [--labeled ../shared/data/aclImdb-labeled.tar.gz]
        [--unlabeled ../shared/data/aclImdb-unsup.tar.gz] [--repeat 3] [--only "a;b"]

Each contender runs as a fresh process on the same unpacked aclImdb tree (train/unsup included), timed
from process start to exit: imports, reading, vectorizing, training (all of it), scoring the test split.
Rounds interleave the contenders; the summary gives medians. Printed per contender: IMDB test accuracy,
wall seconds, and accuracy on short texts made from the test reviews: each review cut to its first and
to its last sentence (labels inherited; kept apart: no recipe is tuned on them).

Contenders: scikit-learn TF-IDF(1,2) + LogisticRegression(C=10); scikit-learn NB-LR (binarized 1-3-grams,
800,000 features, C=0.1, the issue's reference); reviewlens recipes (bow-bigram, fasttext, nbsvm, nbsvm-plus
and the semi-supervised nbsvm-plus-unlabeled, reported apart) and an ensemble of two of them, members trained in its
process. scikit-learn comes with the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REVIEWLENS = ("bow-bigram", "fasttext", "nbsvm", "nbsvm-plus", "nbsvm-plus-unlabeled")
SKLEARN = ("sklearn-tfidf-lr", "sklearn-nb-lr")
#: Ensembles: their members trained one after the other in the contender's process, then combined; the
#: wall time covers all of it. The pair is the one with the best out-of-fold validation accuracy.
ENSEMBLES = {"ensemble(nbsvm-plus,tfidf-bigram)": ("nbsvm-plus", "tfidf-bigram")}
SEMI_SUPERVISED = {"nbsvm-plus-unlabeled"}
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z0-9]")


def sentences(text: str) -> list[str]:
    parts = [part.strip() for part in _SENTENCE_END.split(_BREAK.sub(" ", text))]
    return [part for part in parts if _WORD.search(part)] or [text]


def short_texts(texts: list[str]) -> dict[str, list[str]]:
    """Each test review cut to its first and to its last sentence."""
    split = [sentences(text) for text in texts]
    return {"first": [s[0] for s in split], "last": [s[-1] for s in split]}


def read_split(directory: Path, split: str) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for label, category in ((0, "neg"), (1, "pos")):
        for path in sorted((directory / split / category).iterdir()):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
            labels.append(label)
    return texts, labels


def accuracy(predicted: object, labels: list[int]) -> float:
    import numpy as np

    return float(np.mean(np.asarray(predicted).astype(int) == np.asarray(labels)))


# -- contenders, each in its own process: `--worker NAME --dir DIR` -------------------------------------


def sklearn_worker(name: str, directory: Path) -> dict[str, float]:
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, y_train = read_split(directory, "train")
    test, y_test = read_split(directory, "test")
    if name == "sklearn-tfidf-lr":
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        x = vectorizer.fit_transform(train)
        model = LogisticRegression(C=10, max_iter=1000).fit(x, y_train)

        def predict(texts: list[str]) -> object:
            return model.predict(vectorizer.transform(texts))

    else:
        vectorizer = CountVectorizer(ngram_range=(1, 3), binary=True, max_features=800_000)
        x = vectorizer.fit_transform(train)
        y = np.asarray(y_train)
        p = 1 + np.asarray(x[y == 1].sum(0)).ravel()
        q = 1 + np.asarray(x[y == 0].sum(0)).ravel()
        r = np.log(p / p.sum()) - np.log(q / q.sum())
        model = LogisticRegression(C=0.1, max_iter=1000).fit(x.multiply(r).tocsr(), y)

        def predict(texts: list[str]) -> object:
            return model.predict(vectorizer.transform(texts).multiply(r).tocsr())

    result = {"test": accuracy(predict(test), y_test)}
    for part, texts in short_texts(test).items():
        result[part] = accuracy(predict(texts), y_test)
    return result


def reviewlens_worker(name: str, directory: Path, scratch: Path) -> dict[str, float]:
    import reviewlens

    if name in ENSEMBLES:
        members = [
            reviewlens.train(member, directory, scratch / f"run-{name}-{member}").run_dir for member in ENSEMBLES[name]
        ]
        result_ = reviewlens.train("ensemble", directory, scratch / f"run-{name}", options={"members": tuple(members)})
    else:
        result_ = reviewlens.train(name, directory, scratch / f"run-{name}")
    run = reviewlens.load(result_.run_dir)
    test, y_test = read_split(directory, "test")
    begin = time.perf_counter()
    scores = run.predict(test)
    rate = len(test) / (time.perf_counter() - begin)
    result = {"test": float(result_.metadata.test_accuracy or 0.0), "check": accuracy(scores >= 0.5, y_test)}
    for part, texts in short_texts(test).items():
        result[part] = accuracy(run.predict(texts) >= run.threshold, y_test)
    result["predict_per_s"] = rate
    return result


def run_contender(name: str, directory: Path, scratch: Path) -> dict[str, float]:
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--dir", str(directory), "--scratch", str(scratch)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - begin
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labeled", type=Path, default=SHARED / "aclImdb-labeled.tar.gz")
    parser.add_argument("--unlabeled", type=Path, default=SHARED / "aclImdb-unsup.tar.gz")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="contenders separated by semicolons")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker in SKLEARN:
            print(json.dumps(sklearn_worker(args.worker, args.dir)))
        else:
            print(json.dumps(reviewlens_worker(args.worker, args.dir, args.scratch)))
        return
    contenders = args.only.split(";") if args.only else [*SKLEARN, *REVIEWLENS, *ENSEMBLES]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-fast-") as tmp:
        scratch = Path(tmp)
        for archive in (args.labeled, args.unlabeled):
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
        for round_ in range(args.repeat):
            for name in contenders if round_ % 2 == 0 else list(reversed(contenders)):
                print(f"round {round_ + 1}: {name}", file=sys.stderr)
                results[name].append(run_contender(name, scratch / "aclImdb", scratch / f"r{round_}"))
    report(results, args.repeat)


def report(results: dict[str, list[dict[str, float]]], repeat: int) -> None:
    print(f"2-core figures, {repeat} interleaved rounds, medians (wall: process start to exit, everything included)")
    print("| model | IMDB test | wall s | first sentence | last sentence | predict reviews/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rounds in results.items():

        def median(key: str, rounds: list[dict[str, float]] = rounds) -> float:
            return statistics.median(r[key] for r in rounds) if key in rounds[0] else float("nan")

        label = name + (" (semi-supervised)" if name in SEMI_SUPERVISED else "")
        print(
            f"| {label} | {median('test'):.2%} | {median('wall_s'):.1f} | {median('first'):.2%} "
            f"| {median('last'):.2%} | {median('predict_per_s'):,.0f} |"
        )
    print()
    print("every round:", json.dumps(results))


if __name__ == "__main__":
    main()
