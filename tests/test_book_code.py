"""The Keras book's chapter 4 IMDB code, as a reader pastes it: only `keras.datasets.imdb`'s import changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_the_books_dense_network_runs_with_only_its_import_changed(
    session_aclimdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWLENS_DATA", str(session_aclimdb))  # the data the command line would use
    from tensorflow import keras as seeded

    seeded.utils.set_random_seed(4)  # the book leaves it unseeded; 4 steps on the tiny fixture vary with it
    # --- the book's code (Deep Learning with Python, 2nd ed., 4.1), with its imports ---
    from tensorflow import keras
    from tensorflow.keras import layers

    from reviewlens.data import imdb  # was: from tensorflow.keras.datasets import imdb

    (train_data, train_labels), (test_data, test_labels) = imdb.load_data(num_words=10000)
    word_index = imdb.get_word_index()
    reverse_word_index = dict([(value, key) for (key, value) in word_index.items()])
    decoded_review = " ".join([reverse_word_index.get(i - 3, "?") for i in train_data[0]])

    def vectorize_sequences(sequences, dimension=10000):  # type: ignore[no-untyped-def]
        results = np.zeros((len(sequences), dimension))
        for i, sequence in enumerate(sequences):
            for j in sequence:
                results[i, j] = 1.0
        return results

    x_train = vectorize_sequences(train_data)
    x_test = vectorize_sequences(test_data)
    y_train = np.asarray(train_labels).astype("float32")
    y_test = np.asarray(test_labels).astype("float32")

    model = keras.Sequential(
        [
            layers.Dense(16, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    x_val = x_train[:100]
    partial_x_train = x_train[100:]
    y_val = y_train[:100]
    partial_y_train = y_train[100:]
    history = model.fit(
        partial_x_train, partial_y_train, epochs=4, batch_size=512, validation_data=(x_val, y_val), verbose=0
    )
    results = model.evaluate(x_test, y_test, verbose=0)
    predictions = model.predict(x_test, verbose=0)
    # --- end of the book's code ---

    assert len(decoded_review.split()) == len(train_data[0]) and "?" not in decoded_review.split()[1:]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["val_accuracy"]) == 4
    losses = history.history["loss"]
    assert losses[-1] < losses[0]  # it learns (4 steps on the tiny fixture; the full data gives 88.21-88.64%)
    assert 0.0 <= results[1] <= 1.0 and len(results) == 2
    assert predictions.shape == (len(test_data), 1)


def test_load_data_is_load_indexed_and_the_word_index_decodes_it(session_aclimdb: Path) -> None:
    from reviewlens.data import decode_review, imdb, load_indexed

    (x_train, y_train), (x_test, _) = imdb.load_data(session_aclimdb, num_words=50, maxlen=400)
    (ref_train, ref_y), (ref_test, _) = load_indexed(session_aclimdb, num_words=50, maxlen=400)
    assert [list(x) for x in x_train] == [list(x) for x in ref_train] and (y_train == ref_y).all()
    assert [list(x) for x in x_test] == [list(x) for x in ref_test]
    assert decode_review(x_train[0], imdb.get_word_index()) == decode_review(x_train[0])


def test_keras_options_reviewlens_does_not_read_are_refused_in_one_line(session_aclimdb: Path) -> None:
    from reviewlens.data import imdb
    from reviewlens.errors import ReviewlensError

    with pytest.raises(ReviewlensError, match="index_from"):
        imdb.load_data(session_aclimdb, index_from=2)
