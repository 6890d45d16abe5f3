"""The fasttext recipe: averaged unigram+bigram vectors equal to Keras', a linear hidden layer in dense.v1, runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import sparse
from scipy.special import expit

import reviewlens
from reviewlens.data import Dataset
from reviewlens.models.fasttext import FastText
from reviewlens.predictors.dense import WEIGHTS_FILE, DensePredictor
from reviewlens.runs import read_predictions
from reviewlens.text import BagOfWords
from reviewlens.text.keras import bag_of_words_layers

from .test_linear import corpus

SPLIT = "lower_and_split_punctuation"


def _keras_vectors(vectorizer: BagOfWords, texts: list[str]) -> np.ndarray:
    text = keras.Input(shape=(1,), dtype="string")
    x = text
    for layer in bag_of_words_layers(vectorizer):
        x = layer(x)
    return keras.Model(text, x).predict(tf.constant(texts)[:, None], verbose=0)


def test_mean_vectors_are_counts_over_their_total_and_equal_keras() -> None:
    train, test = corpus(200, seed=1), corpus(80, seed=2)
    ours = BagOfWords(max_tokens=300, ngrams=2, output_mode="mean", standardize=SPLIT)
    fitted = ours.fit_transform(train)
    counts = BagOfWords(max_tokens=300, ngrams=2, output_mode="count", standardize=SPLIT)
    counted = counts.fit_transform(train).toarray()
    assert counts.vocabulary == ours.vocabulary
    totals = counted.sum(axis=1, keepdims=True)
    expected = np.divide(counted, totals, out=np.zeros_like(counted), where=totals > 0)
    np.testing.assert_array_equal(fitted.toarray(), expected.astype(np.float32))
    assert fitted[1].nnz == 0  # the empty review: a row of zeros
    np.testing.assert_allclose(fitted.sum(axis=1).A1[3:], 1.0, rtol=1e-6)
    vectors = ours.transform(test).toarray()
    np.testing.assert_allclose(_keras_vectors(ours, test), vectors, rtol=1e-6, atol=1e-7)
    rebuilt = BagOfWords.from_config(json.loads(json.dumps(ours.get_config())))
    np.testing.assert_array_equal(rebuilt.transform(test).toarray(), vectors)
    ids = [ours.token_ids(ours.tokenize(text)) for text in test]
    np.testing.assert_array_equal(ours.transform_ids(ids).toarray(), vectors)


def test_sgd_learns_a_separable_toy_problem_and_exports_two_layers() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(np.float32)
    columns = np.where(y == 1, 1, 2)[:, None] + np.array([[0, 2]])  # one cue term and one neutral term
    x = sparse.csr_matrix((np.full(800, 0.5, np.float32), columns.ravel(), np.arange(0, 801, 2)), shape=(400, 5))
    model = FastText(5, dim=4, learning_rate=0.5, seed=0)
    losses = [loss for loss, _ in model.fit_epochs(x, y, epochs=5, batch_size=8)]
    assert losses[-1] < losses[0] and np.mean((model.logits(x) >= 0) == (y == 1)) == 1.0
    kernels, biases = model.layers()
    assert [k.shape for k in kernels] == [(5, 4), (4, 1)] and not biases[0].any()
    np.testing.assert_allclose((x @ kernels[0]) @ kernels[1][:, 0] + biases[1], model.logits(x), rtol=1e-6)


@pytest.fixture(scope="module")
def fasttext_run(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "fasttext"
    train("fasttext", session_aclimdb, out, epochs=3)
    return out


def test_fasttext_run_predicts_with_numpy_and_its_keras_model_the_same(fasttext_run: Path, session_aclimdb: Path):
    run = reviewlens.load(fasttext_run)
    assert run.predictor.kind == "dense.v1" and run.metadata.family == "fasttext"
    assert run.predictor.activations == ["linear"]  # type: ignore[attr-defined]
    assert run.metadata.hyperparameters["dim"] == 10 and run.metadata.hyperparameters["refit"] == "train+validation"
    texts, _ = Dataset(session_aclimdb).read("test")
    np.testing.assert_allclose(run.predict(texts), read_predictions(fasttext_run)["test_probabilities"], atol=1e-6)
    assert run.metadata.test_accuracy >= 0.8  # the synthetic reviews' cue words are easy
    odd = ["", "wonderful", "!", "x\u0085y", "Terrible!!! Awful...", "unseenword"]
    saved = reviewlens.load(fasttext_run, runtime="keras")
    np.testing.assert_allclose(saved.predict([*texts[:50], *odd]), run.predict([*texts[:50], *odd]), atol=1e-5)
    empty, one_word = run.predict(["", "wonderful"])
    assert 0.0 < empty < 1.0 and one_word > empty


def _leave_one_out(predictor: DensePredictor, text: str) -> dict[str, float]:
    """Each present term's effect, recomputed: its column dropped from the counts, the rest averaged again."""
    vectorizer = predictor.preprocessor
    counts = BagOfWords.from_config({**vectorizer.get_config(), "output_mode": "count"}).transform([text]).toarray()
    score = float(predictor.predict_vectors(sparse.csr_matrix(counts / counts.sum()))[0, 1])
    effects = {}
    for column in np.flatnonzero(counts[0])[np.flatnonzero(counts[0]) != 0]:
        rest = counts.copy()
        rest[0, column] = 0.0
        x = rest / rest.sum() if rest.sum() else rest
        effects[vectorizer.vocabulary[column]] = score - float(predictor.predict_vectors(sparse.csr_matrix(x))[0, 1])
    return effects


@pytest.mark.parametrize("text", ["Wonderful, superb film! The plot is dull.", "wonderful", "awful unseenword awful"])
def test_explain_with_a_linear_hidden_layer_is_exact(fasttext_run: Path, text: str):
    loaded = reviewlens.load(fasttext_run).predictor
    assert isinstance(loaded, DensePredictor)
    predictor = DensePredictor(loaded.preprocessor, loaded.kernels, loaded.biases, activations=loaded.activations)
    explanation = predictor.explain(text)
    assert explanation.method == "exact"
    assert explanation.score == pytest.approx(float(predictor.predict_proba([text])[0, 1]), abs=1e-6)
    expected = _leave_one_out(predictor, text)
    assert {c.term: c.contribution for c in explanation.terms} == pytest.approx(expected, abs=1e-6)
    assert predictor.explain("").terms == []


def test_weights_without_activations_load_as_relu_as_before(fasttext_run: Path, tmp_path: Path):
    loaded = reviewlens.load(fasttext_run).predictor
    assert isinstance(loaded, DensePredictor)
    with np.load(fasttext_run / WEIGHTS_FILE) as weights:
        assert weights["activations"].tolist() == ["linear"]
        np.savez(tmp_path / WEIGHTS_FILE, **{k: weights[k] for k in weights.files if k != "activations"})
    metadata = SimpleNamespace(labels=("negative", "positive"))
    old = DensePredictor.load(tmp_path, metadata, loaded.preprocessor)  # type: ignore[arg-type]
    assert old.activations == ["relu"]
    hidden = np.asarray(loaded.preprocessor.transform(["Dull, awful, boring."]) @ loaded.kernels[0])
    expected = expit(np.maximum(hidden, 0.0) @ loaded.kernels[1] + loaded.biases[1])[0, 0]
    assert float(old.predict_proba(["Dull, awful, boring."])[0, 1]) == pytest.approx(float(expected), abs=1e-6)
    with pytest.raises(ValueError, match="activation"):
        DensePredictor(loaded.preprocessor, loaded.kernels, loaded.biases, activations=["tanh"])


def test_recipes_lists_fasttext_with_its_figure() -> None:
    from .test_cli import run

    listed = {recipe["name"]: recipe for recipe in json.loads(run("recipes", "--json").stdout)}
    assert listed["fasttext"]["family"] == "fasttext" and listed["fasttext"]["expected_accuracy"] == 0.892
    assert "fastText" in listed["fasttext"]["summary"] and "fasttext" in run("recipes").stdout
