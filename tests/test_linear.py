"""The linear family: punctuation-as-tokens n-grams equal to TextVectorization's, NB ratios, NBSVM and NBSVM++ runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

import reviewlens
from reviewlens.data import Dataset
from reviewlens.library import load_library
from reviewlens.models.nb_linear import interpolated, nb_ratios
from reviewlens.runs import read_predictions
from reviewlens.text import BagOfWords, standardize, tokenize
from reviewlens.text.keras import standardize_split_punctuation, text_vectorization

from .conftest import TRAP, make_review
from .test_text import LINE_BREAKS, keras_vectorizer

SPLIT = "lower_and_split_punctuation"


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [make_review(rng, i % 2) + rng.choice(["", "!", "!!", "?", " :)", "...", " 10/10"]) for i in range(n)]
    texts[0] += " " + " ".join(TRAP) + " Don't <BR/>miss it<br >! café’s"
    texts[1], texts[2] = "", "!!! ... ???"
    return texts


def test_split_punctuation_keeps_each_punctuation_character_as_a_token() -> None:
    assert tokenize("Great film!!! Don't miss it<br /><BR/>10/10", SPLIT) == [
        "great", "film", "!", "!", "!", "don", "'", "t", "miss", "it", "10", "/", "10",
    ]  # fmt: skip
    assert tokenize("x\u0085y café’s", SPLIT) == ["x", "y", "café’s"]  # only ASCII punctuation is split
    assert standardize("Wow!", SPLIT) == "wow !"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(LINE_BREAKS + "!?.,'<>/ br"))))
def test_split_punctuation_tokens_equal_tensorflows(text: str) -> None:
    ours = tokenize(text, SPLIT)
    theirs = standardize_split_punctuation(tf.constant([text])).numpy()[0].decode("utf-8").split()
    assert ours == theirs
    assert all(token and token.splitlines() == [token] for token in ours)


@pytest.mark.parametrize("ngrams", [2, 3])
def test_split_punctuation_n_grams_equal_text_vectorization(ngrams: int) -> None:
    train, test = corpus(300, seed=1), corpus(120, seed=2)
    ours = BagOfWords(max_tokens=400, ngrams=ngrams, output_mode="multi_hot", standardize=SPLIT)
    vectors = ours.fit_transform(train).toarray()
    layer = keras_vectorizer(
        train, standardize_split_punctuation, max_tokens=400, ngrams=ngrams, output_mode="multi_hot"
    )
    assert ours.vocabulary == layer.get_vocabulary()
    assert "!" in ours.vocabulary
    np.testing.assert_array_equal(vectors, layer(tf.constant(train)).numpy())
    np.testing.assert_array_equal(text_vectorization(ours)(tf.constant(test)).numpy(), ours.transform(test).toarray())
    rebuilt = BagOfWords.from_config(json.loads(json.dumps(ours.get_config())))
    np.testing.assert_array_equal(rebuilt.transform(test).toarray(), ours.transform(test).toarray())


def test_nb_ratios_and_interpolation_by_hand() -> None:
    x = sparse.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]], np.float32))
    y = np.array([1, 1, 0, 0])
    p, q = np.array([1 + 2, 1 + 1, 1 + 0]), np.array([1 + 0, 1 + 1, 1 + 2])
    np.testing.assert_allclose(nb_ratios(x, y), np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-6)
    w = np.array([2.0, -1.0, 0.0], np.float32)
    np.testing.assert_allclose(interpolated(w, 0.25), 0.75 * 1.0 + 0.25 * w)


@pytest.fixture(scope="module", params=["nbsvm", "nbsvm-plus"])
def linear_run(request: pytest.FixtureRequest, session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / request.param
    train(request.param, session_aclimdb, out, epochs=2)
    return out


def test_linear_runs_predict_with_numpy_and_their_keras_model_the_same(linear_run: Path, session_aclimdb: Path):
    run = reviewlens.load(linear_run)
    assert run.predictor.kind == "dense.v1" and run.metadata.family == "linear"
    texts, _ = Dataset(session_aclimdb).read("test")
    np.testing.assert_allclose(run.predict(texts), read_predictions(linear_run)["test_probabilities"], atol=1e-6)
    assert run.metadata.test_accuracy >= 0.8  # the synthetic reviews' cue words are easy
    odd = ["", "wonderful", "!", "x\u0085y", "Terrible!!! Awful..."]
    saved = reviewlens.load(linear_run, runtime="keras")
    np.testing.assert_allclose(saved.predict([*texts[:50], *odd]), run.predict([*texts[:50], *odd]), atol=1e-5)
    assert run.metadata.hyperparameters["beta"] in (0.25, 0.5, 0.75, 1.0)


def test_linear_runs_explain_exactly_and_the_library_reads_their_punctuation(linear_run: Path):
    run = reviewlens.load(linear_run)
    explanation = run.explain("Wonderful, superb film!")
    assert explanation.method == "exact" and {"wonderful", "superb"} <= {c.term for c in explanation.terms}
    library = load_library([linear_run])
    assert library.get("imdb_tokenizer").predict("Superb!") == ["superb", "!"]
    texts = ["Wonderful, superb film!", "Dull... boring?", "", "!"]
    scores = [r.score for r in library.get("imdb_sentiment").predict_batch([{"text": t} for t in texts])]
    np.testing.assert_allclose(scores, run.predict(texts), atol=1e-6)


def test_the_choices_made_on_validation_are_refitted_on_train_and_validation(linear_run: Path, session_aclimdb: Path):
    run = reviewlens.load(linear_run)
    assert run.metadata.hyperparameters["refit"] == "train+validation"
    val_texts, _ = Dataset(session_aclimdb).read("validation")
    kept = read_predictions(linear_run)["val_probabilities"]  # the selection model's: it never saw validation
    assert len(kept) == len(val_texts) and run.metadata.val_accuracy is not None
    assert not np.allclose(run.predict(val_texts), kept, atol=1e-4)  # the final model did


def _with_unlabeled(root: Path) -> Path:
    from .conftest import write_aclimdb

    base = write_aclimdb(root, {"train": 60, "test": 30}, bad_utf8=False)
    rng = random.Random(5)
    (base / "train" / "unsup").mkdir()
    for i in range(50):
        (base / "train" / "unsup" / f"{i}_0.txt").write_text(make_review(rng, i % 2), encoding="utf-8")
    return base


def test_self_training_learns_from_the_surest_unlabeled_reviews(tmp_path: Path, session_aclimdb: Path):
    from reviewlens.errors import ReviewlensError
    from reviewlens.training import train

    result = train("nbsvm-plus-unlabeled", _with_unlabeled(tmp_path / "data"), tmp_path / "run", epochs=2)
    assert result.metadata.hyperparameters["pseudo_labelled"] == 30  # the surest 60% of 50
    assert result.metadata.test_accuracy >= 0.8
    assert "semi-supervised" in result.metadata.recipe_config["tags"]
    with pytest.raises(ReviewlensError, match="has none; pass an aclImdb directory with train/unsup"):
        train("nbsvm-plus-unlabeled", session_aclimdb, tmp_path / "none", epochs=1)
