"""The Keras book's dense network (4.1) on `reviewlens.data.imdb` in place of `keras.datasets.imdb`.

    python benchmarks/book_dense_indexed.py [DATA] [--seed N]

DATA defaults to ../shared/data/aclImdb-labeled.tar.gz. The book's final model: 16-16-1 on 10,000-word
multi-hot vectors, trained 4 epochs on all 25,000 training reviews (batch 512, RMSprop), evaluated once
on the 25,000 test reviews. Prints the test accuracy and the time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb-labeled.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()

    from tensorflow import keras
    from tensorflow.keras import layers

    from reviewlens.data import imdb, vectorize_sequences

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    (train_data, train_labels), (test_data, test_labels) = imdb.load_data(args.data, num_words=10000)
    x_train, x_test = vectorize_sequences(train_data), vectorize_sequences(test_data)
    y_train = np.asarray(train_labels).astype("float32")
    y_test = np.asarray(test_labels).astype("float32")
    loaded = time.perf_counter()
    model = keras.Sequential(
        [
            layers.Dense(16, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=4, batch_size=512, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    done = time.perf_counter()
    print(f"train {len(x_train)}, test {len(x_test)} reviews; seed {args.seed}")
    timing = f"load {loaded - start:.1f} s, train+test {done - loaded:.1f} s"
    print(f"test accuracy {accuracy:.2%}, loss {loss:.4f}; {timing}")


if __name__ == "__main__":
    main()
