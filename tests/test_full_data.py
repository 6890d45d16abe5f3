"""On the real IMDB data (skipped without ../shared/data): exactness and the vocabulary-file trap."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens
from reviewlens.data import Dataset
from reviewlens.text import SPACE_LIKE, BagOfWords
from reviewlens.text.keras import standardize as tf_standardize

from .conftest import FULL_ARCHIVE

pytestmark = [
    pytest.mark.full_data,
    pytest.mark.skipif(not FULL_ARCHIVE.is_file(), reason=f"{FULL_ARCHIVE} is absent"),
]


@pytest.fixture(scope="module")
def imdb() -> Dataset:
    return Dataset(FULL_ARCHIVE)


@pytest.fixture(scope="module")
def full_run(imdb: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reviewlens.train("bow-bigram", imdb, tmp_path_factory.mktemp("full") / "bigram").run_dir


def test_the_full_data_is_what_its_readme_says(imdb: Dataset) -> None:
    counts = imdb.counts()
    assert counts["train"] == {0: 10000, 1: 10000}
    assert counts["validation"] == {0: 2500, 1: 2500}
    assert counts["test"] == {0: 12500, 1: 12500}


def test_vectors_equal_text_vectorization_on_4000_real_reviews(imdb: Dataset) -> None:
    texts, _ = imdb.read("test")
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), 4000, replace=False)]
    train, held = sample[:3000], sample[3000:]
    ours = BagOfWords(max_tokens=20000, ngrams=2)
    ours.fit_transform(train)
    layer = keras.layers.TextVectorization(max_tokens=20000, ngrams=2, output_mode="multi_hot",
                                           standardize=tf_standardize)  # fmt: skip
    layer.adapt(tf.data.Dataset.from_tensor_slices(train).batch(256))
    assert ours.vocabulary == layer.get_vocabulary()
    np.testing.assert_array_equal(ours.transform(held).toarray(), layer(tf.constant(held)).numpy())
    # Where no review holds a character the book's standardization mishandles, it agrees with the book too.
    plain = [t for t in held if not any(c in SPACE_LIKE for c in t)]
    book = keras.layers.TextVectorization(max_tokens=20000, ngrams=2, output_mode="multi_hot",
                                          vocabulary=ours.vocabulary[1:])  # fmt: skip
    np.testing.assert_array_equal(ours.transform(plain).toarray(), book(tf.constant(plain)).numpy())


def test_bigram_model_trained_on_the_full_data_saves_loads_and_scores(full_run: Path, imdb: Dataset) -> None:
    # The training set holds U+0085: with the book's standardization this model would not load.
    train_texts, _ = imdb.read("train")
    assert any("\x85" in text for text in train_texts)
    model = keras.saving.load_model(full_run / "model.keras")
    vocabulary = model.get_layer("text_vectorization").get_vocabulary()
    assert len(vocabulary) == len(set(vocabulary)) == 20000
    metadata = json.loads((full_run / "metadata.json").read_text())
    assert metadata["test_accuracy"] >= 0.897 - 0.007  # the book's figure, within the 0.7 points
    texts, labels = imdb.read("test")
    lean = reviewlens.load(full_run).predict(texts)
    saved = reviewlens.load(full_run, runtime="keras").predict(texts)
    np.testing.assert_allclose(lean, saved, atol=1e-5)
    assert float(np.mean((saved > 0.5) == np.array(labels))) == pytest.approx(metadata["test_accuracy"])
