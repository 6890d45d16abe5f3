"""The tokenization layer: training-step speed of its computations side by side, and what its patterns can read.

    python benchmarks/bench_tokenization.py                 # speed, synthetic ids (no data needed)
    python benchmarks/bench_tokenization.py --accuracy DATA # frozen greedy patterns + a linear read-out, full data

Speed: one training step (forward and backward) on a batch of 32 reviews of 2,000 character ids, 30 characters,
each computation timed in the same process, interleaved over rounds; medians. The published model's map
(500 patterns of 13 columns): the dense convolution (the package's formulation) against the gather path; the
pooled model's counts (pattern_len 12): the dense convolution summed over positions against hashed counting.

Accuracy: patterns chosen by greedy max cover on 3,000 training reviews (4- to 12-grams, padded with
wildcards), counted in every review (log(1 + count)), a logistic read-out (dropout 0.3, Adam 3e-3, 8 epochs)
on the first N patterns; validation accuracy per epoch (the patterns stay as initialized: this measures what the
initializer gives, not the straight-through training).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from reviewlens.models.tokenization import count_tokens, tokenize_dense, tokenize_gather

CHARS, BATCH, LENGTH = 30, 32, 2000


def _step(fn: Any, x: tf.Tensor, w: tf.Variable) -> Any:
    @tf.function
    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn(x, w))
        return tape.gradient(loss, w)

    return step


def speed(rounds: int) -> None:
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(0, CHARS, (BATCH, LENGTH)).astype(np.int32))
    one_hot = tf.transpose(tf.one_hot(ids, CHARS + 1)[:, :, :CHARS], [0, 2, 1])[..., None]
    published = tf.Variable(rng.normal(0.5, 0.15, (CHARS, 13, 1, 500)).astype(np.float32))
    pooled_w = rng.normal(0.5, 0.15, (CHARS, 12, 1, 500)).astype(np.float32)
    pooled_w[:, 6:] = -0.25  # 6-grams padded with wildcards, as the greedy initializer makes them
    pooled = tf.Variable(pooled_w)
    cases = {
        "map: dense convolution (published)": (_step(tokenize_dense, one_hot, published), one_hot),
        "map: gather (reviewlens)": (_step(tokenize_gather, ids, published), ids),
        "counts: dense convolution, summed": (
            _step(lambda x, w: tf.reduce_sum(tokenize_dense(x, w), axis=[2, 3]), one_hot, pooled),
            one_hot,
        ),
        "counts: hashed (reviewlens)": (_step(count_tokens, ids, pooled), ids),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for step, x in cases.values():
        step(x)  # trace
    for r in range(rounds):
        for name, (step, x) in list(cases.items())[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            step(x)
            times[name].append(time.perf_counter() - start)
    print(f"| computation | s per step (batch {BATCH}) | reviews/s | speed-up |\n| --- | ---: | ---: | ---: |")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        base = medians[
            "map: dense convolution (published)" if name.startswith("map") else "counts: dense convolution, summed"
        ]
        print(f"| {name} | {median:.3f} | {BATCH / median:,.0f} | {base / median:.1f}x |")


def accuracy(data: str, sizes: list[int]) -> None:
    import keras

    from reviewlens.data import Dataset
    from reviewlens.models.tokenization import PatternsInitializerMaxCover
    from reviewlens.text.characters import CharacterEncoder

    started = time.time()
    splits = Dataset(data).read_splits("train", "validation")
    (xt, yt), (xv, yv) = splits["train"], splits["validation"]
    encoder = CharacterEncoder(length=LENGTH).fit(xt)
    x_train, x_val = encoder.transform(xt), encoder.transform(xv)
    y_train, y_val = np.array(yt, np.float32), np.array(yv, np.float32)
    pick = sorted(np.random.default_rng(1337).permutation(len(xt))[:3000])
    init = PatternsInitializerMaxCover([xt[i] for i in pick], encoder.alphabet, gram_lens=range(4, 13),
                                       strategy="greedy", padding="wildcard", seed=1)  # fmt: skip
    patterns = init((encoder.num_chars, 12, 1, max(sizes)))
    print(f"patterns chosen: {time.time() - started:.0f} s", flush=True)
    count = tf.function(lambda x: count_tokens(x, patterns))

    def features(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log1p(count(tf.constant(x[i : i + 256])).numpy()) for i in range(0, len(x), 256)])

    f_train, f_val = features(x_train), features(x_val)
    print(f"counted: {time.time() - started:.0f} s", flush=True)
    for n in sizes:
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [keras.Input((n,)), keras.layers.Dropout(0.3), keras.layers.Dense(1, activation="sigmoid")]
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
        history = model.fit(f_train[:, :n], y_train, batch_size=64, epochs=8, validation_data=(f_val[:, :n], y_val),
                            verbose=0)  # fmt: skip
        print(f"{n} patterns: validation accuracy per epoch {[round(a, 4) for a in history.history['val_accuracy']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accuracy", metavar="DATA", help="aclImdb data (directory or .tar.gz) for the accuracy run")
    parser.add_argument("--sizes", default="2000,4000,8000,16000")
    args = parser.parse_args()
    if args.accuracy:
        accuracy(args.accuracy, [int(s) for s in args.sizes.split(",")])
    else:
        speed(args.rounds)


if __name__ == "__main__":
    main()
