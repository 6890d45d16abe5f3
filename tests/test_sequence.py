"""Sequence recipes: exact int vectorization, every recipe trains, saves, loads in safe mode and predicts the same."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens
from reviewlens.data import Dataset, sample_path
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics
from reviewlens.families import get_family
from reviewlens.families.sequence import SequenceFamily
from reviewlens.predictors.keras_model import MODEL_FILE, load_keras_model
from reviewlens.recipes import RECIPES, Recipe, get_recipe
from reviewlens.text.keras import int_vectorization, standardize
from reviewlens.text.sequences import SequenceVectorizer
from reviewlens.training import train

from .conftest import NEUTRAL, TRAP, make_review, write_aclimdb

SEQUENCE_RECIPES = [name for name, recipe in RECIPES.items() if isinstance(get_family(recipe.family), SequenceFamily)]
PADDING_INVARIANT = {
    "sum-embedding", "bilstm-masked", "bilstm-pretrained", "conv1d", "transformer", "transformer-posemb"
}  # fmt: skip
#: Smaller layers than the recipes' for speed; the architecture (and every custom layer) is the same.
SMALL = {"embedding": 8, "units": 4, "filters": 8, "dense": 8}


def _texts() -> list[str]:
    rng = random.Random(3)
    return [make_review(rng, i % 2) for i in range(40)] + ["", "!!!", *TRAP, " ".join(TRAP * 4), "caf\u00c9 CAF\u00c9"]


def _keras_ids(vectorizer: SequenceVectorizer, texts: list[str]) -> np.ndarray:
    x = text = keras.Input(shape=(1,), dtype="string")
    for layer in int_vectorization(vectorizer):
        x = layer(x)
    return np.asarray(keras.Model(text, x)(tf.constant([[t] for t in texts])))


@pytest.mark.parametrize("truncate", ["head", "tail"])
@pytest.mark.parametrize("padding", ["head", "tail"])
def test_int_sequences_equal_text_vectorization(truncate: str, padding: str) -> None:
    texts = _texts()
    vectorizer = SequenceVectorizer(max_tokens=30, length=12, truncate=truncate, padding=padding).fit(texts)  # type: ignore[arg-type]
    np.testing.assert_array_equal(vectorizer.transform(texts), _keras_ids(vectorizer, texts))
    layer = keras.layers.TextVectorization(max_tokens=30, standardize=standardize, output_mode="int")
    layer.adapt(tf.constant(texts))
    assert layer.get_vocabulary() == ["", "[UNK]", *vectorizer.words]


def test_truncation_keeps_the_configured_end() -> None:
    words = [f"w{i}" for i in range(10)]
    head = SequenceVectorizer(max_tokens=20, length=4, truncate="head", padding="head").fit([" ".join(words)])
    tail = SequenceVectorizer.from_config({**head.get_config(), "truncate": "tail", "padding": "tail"})
    ids = head.ids(" ".join(words))
    assert head.transform([" ".join(words)]).tolist() == [ids[-4:]]
    assert tail.transform([" ".join(words)]).tolist() == [ids[:4]]
    assert head.transform(["w1"]).tolist() == [[0, 0, 0, ids[1]]]
    assert tail.transform(["w1 nope"]).tolist() == [[ids[1], 1, 0, 0]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_aclimdb(tmp_path_factory.mktemp("tiny"), {"train": 30, "test": 20})


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vectors") / "glove.txt"
    rng = np.random.default_rng(0)
    path.write_text("".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=6)) + "\n" for w in NEUTRAL))
    return path


def _small(name: str) -> Recipe:
    recipe = get_recipe(name)
    model = {k: (SMALL[k] if k in SMALL and isinstance(v, int) else v) for k, v in recipe.model.items()}
    return dataclasses.replace(recipe, model=model)


@pytest.mark.parametrize("name", SEQUENCE_RECIPES)
def test_every_sequence_recipe_trains_saves_and_loads_in_safe_mode(
    name: str, tiny: Path, vectors: Path, tmp_path: Path
) -> None:
    options: dict[str, object] = {"max_length": 24, "bucket": True}  # short: bucketed only when asked
    if get_recipe(name).model.get("pretrained"):
        options["embeddings"] = vectors
    result = train(_small(name), tiny, tmp_path / name, epochs=1, options=options)
    metadata = result.metadata
    assert metadata.hyperparameters["sequence_length"] == 24
    assert metadata.hyperparameters["bucket"] == (name in PADDING_INVARIANT)
    texts, labels = Dataset(tiny).read("test")
    model = reviewlens.load(result.run_dir)
    assert model.runtime == "keras"
    # The saved raw-string model scores the test split exactly as the model did in training.
    assert metrics(model.predict(texts), labels)["loss"] == pytest.approx(metadata.metrics["test"]["loss"], abs=1e-5)
    plain = keras.saving.load_model(result.run_dir / MODEL_FILE, safe_mode=True)
    direct = np.asarray(plain(tf.constant([[t] for t in ["", *TRAP]]))).reshape(-1)
    assert np.all(np.isfinite(direct)) and np.all((direct >= 0) & (direct <= 1))
    np.testing.assert_allclose(direct, model.predict(["", *TRAP]), atol=1e-6)


def test_pretrained_recipe_reports_coverage_and_freezes_the_vectors(tiny: Path, vectors: Path, tmp_path: Path) -> None:
    options = {"max_length": 16, "embeddings": vectors}
    result = train(_small("bilstm-pretrained"), tiny, tmp_path / "run", epochs=1, options=options)
    hyper = result.metadata.hyperparameters
    assert hyper["embeddings"] == str(vectors)
    assert 0 < hyper["embedding_coverage"] < 1  # the neutral words only
    model = load_keras_model(result.run_dir / MODEL_FILE)
    matrix = model.get_layer("rnn").get_layer("embedding").get_weights()[0]
    words = SequenceVectorizer(max_tokens=20000).fit(Dataset(tiny).read("train")[0]).words
    first = next(line.split() for line in vectors.read_text().splitlines())
    np.testing.assert_allclose(matrix[words.index(first[0]) + 2], np.array(first[1:], np.float32))
    assert not np.any(matrix[words.index("wonderful") + 2])  # not in the file: zeros
    with pytest.raises(ReviewlensError, match="--embeddings PATH"):
        train(_small("bilstm-pretrained"), tiny, tmp_path / "none", epochs=1, options={"max_length": 16})


def test_long_reviews_are_cut_at_the_configured_end(tiny: Path, tmp_path: Path) -> None:
    """A cue word past the sequence length counts only when the head is cut."""
    for side in ("head", "tail"):
        options = {"max_length": 8, "truncate": side}
        result = train(_small("sum-embedding"), tiny, tmp_path / side, epochs=1, options=options)
        assert result.metadata.hyperparameters["truncate"] == side
        model = keras.saving.load_model(result.run_dir / MODEL_FILE)
        words = model.get_layer("text_vectorization").get_vocabulary()
        review = " ".join(["the"] * 20 + ["wonderful"])
        ids = np.asarray(model.get_layer("fit_length")(model.get_layer("text_vectorization")(tf.constant([[review]]))))
        assert (words.index("wonderful") in ids[0].tolist()) == (side == "head")


def test_options_early_stopping_schedule_and_clipping(tiny: Path, tmp_path: Path) -> None:
    options = {"max_length": 16, "early_stopping": 1, "lr_schedule": "cosine", "clipnorm": 1.0}
    recipe = dataclasses.replace(_small("sum-embedding"), learning_rate=0.05)  # overfits fast: val_loss rises
    result = train(recipe, tiny, tmp_path / "run", epochs=40, options=options)
    history = json.loads((result.run_dir / "history.json").read_text())
    assert len(history["val_loss"]) < 40
    assert {
        "early_stopping": 1,
        "lr_schedule": "cosine",
        "clipnorm": 1.0,
    }.items() <= result.metadata.hyperparameters.items()
    plateau = train(_small("sum-embedding"), tiny, tmp_path / "plateau", epochs=2,
                    options={"max_length": 16, "lr_schedule": "plateau"})  # fmt: skip
    assert len(json.loads((plateau.run_dir / "history.json").read_text())["loss"]) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_length": 0}, "--max-length 0"),
        ({"truncate": "middle"}, "--truncate middle"),
        ({"lr_schedule": "warp"}, "--lr-schedule warp"),
        ({"clipnorm": -1.0}, "--clipnorm -1.0"),
        ({"backend": "torch"}, "--backend torch"),
    ],
)
def test_bad_options_are_user_errors(options: dict[str, object], message: str, tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match=message):
        train("sum-embedding", tiny, tmp_path / "run", epochs=1, options=options)
    assert not (tmp_path / "run").exists()


def test_a_bag_of_words_recipe_refuses_sequence_options(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match="does not take --max-length"):
        train("bow-unigram", tiny, tmp_path / "run", epochs=1, options={"max_length": 10})


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is not None, reason="jax is installed; this is for machines without"
)
def test_jax_backend_without_jax_is_a_user_error(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match=r"reviewlens\[jax\]"):
        train("sum-embedding", tiny, tmp_path / "run", epochs=1, options={"backend": "jax"})


def test_streaming_from_generators_matches_the_in_memory_path(tmp_path: Path) -> None:
    """The modelkit tutorial's data path on the embedded sample: the same accuracy as reading into memory."""
    recipe = get_recipe("sum-embedding")
    memory = train(recipe, sample_path(), tmp_path / "memory", epochs=3).metadata
    streamed = train(recipe, sample_path(), tmp_path / "stream", epochs=3, options={"stream": True}).metadata
    assert streamed.data["train"] == memory.data["train"]
    assert streamed.data["test"] == memory.data["test"]
    assert streamed.test_accuracy == pytest.approx(memory.test_accuracy, abs=0.03)
    assert streamed.test_accuracy > 0.65


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("REVIEWLENS_DATA", None)
    return subprocess.run([sys.executable, "-m", "reviewlens.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=300)  # fmt: skip


def test_cli_trains_a_sequence_recipe_with_options_and_predicts(tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = _cli("train", "--recipe", "sum-embedding", "--data", str(tiny), "--epochs", "1", "--max-length", "12",
                "--truncate", "head", "--no-bucket", "--out", str(run_dir), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    hyper = json.loads(done.stdout)["hyperparameters"]
    assert (hyper["sequence_length"], hyper["truncate"], hyper["bucket"]) == (12, "head", False)
    predicted = _cli("predict", str(run_dir), "", "A wonderful, superb film.", "--json")
    assert predicted.returncode == 0, predicted.stderr
    blank, review = json.loads(predicted.stdout)
    assert (blank["score"], blank["error"]) == (None, "empty text") and 0.0 <= review["score"] <= 1.0


def test_cli_sequence_options_on_a_bag_of_words_recipe_exit_2(tiny: Path, tmp_path: Path) -> None:
    done = _cli("train", "--recipe", "bow-unigram", "--data", str(tiny), "--max-length", "12",
                "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "error: recipe 'bow-unigram' (bow family) does not take --max-length; leave it out"


def test_recipes_lists_the_sequence_recipes_and_says_which_are_slow() -> None:
    listed = {recipe["name"]: recipe for recipe in json.loads(_cli("recipes", "--json").stdout)}
    assert set(SEQUENCE_RECIPES) <= set(listed)
    assert {name for name in SEQUENCE_RECIPES if listed[name]["slow"]} == {
        "bilstm-onehot", "bilstm-embedding", "bilstm-masked", "bilstm-pretrained", "transformer", "transformer-posemb"
    }  # fmt: skip
    assert "row lookups" in listed["bilstm-onehot"]["notes"]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install '.[jax]')")
def test_cli_trains_on_the_jax_backend_and_saves_a_tensorflow_artifact(tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = _cli("train", "--recipe", "transformer", "--data", str(tiny), "--epochs", "1", "--max-length", "16",
                "--backend", "jax", "--out", str(run_dir), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    metadata = json.loads(done.stdout)
    assert metadata["hyperparameters"]["backend"] == "jax"
    texts, labels = Dataset(tiny).read("test")
    scored = metrics(reviewlens.load(run_dir).predict(texts), labels)["loss"]
    assert scored == pytest.approx(metadata["metrics"]["test"]["loss"], abs=1e-4)


def test_one_hot_lstm_by_row_lookup_is_the_books_one_hot_lstm() -> None:
    from reviewlens.models import rnn

    keras.utils.set_random_seed(3)
    book = rnn.build(40, 9, embedding=None, units=4, dense_one_hot=True)
    fast = rnn.build(40, 9, embedding=None, units=4)
    assert not any(layer.name == "one_hot" for layer in fast.layers)
    # Move the book model's weights over: each LSTM's input kernel becomes that direction's rows.
    pair = book.get_layer("bidirectional")
    for direction, lstm in (("forward", pair.forward_layer), ("backward", pair.backward_layer)):
        kernel, recurrent, bias = lstm.get_weights()
        fast.get_layer(f"{direction}_kernel_rows").set_weights([kernel])
        fast.get_layer(f"{direction}_lstm").set_weights([np.eye(16, dtype="float32"), recurrent, bias])
    fast.get_layer("output").set_weights(book.get_layer("output").get_weights())
    ids = np.random.default_rng(0).integers(0, 40, size=(6, 9)).astype("int32")
    ids[0, 5:] = 0  # padding is token 0, one-hot encoded like any other token, in both
    np.testing.assert_allclose(fast.predict(ids, verbose=0), book.predict(ids, verbose=0), atol=1e-6)
    # The identity kernels stay out of training: only the rows, recurrent kernels, biases and output learn.
    frozen = [fast.get_layer(f"{d}_lstm").cell.kernel for d in ("forward", "backward")]
    assert all(not v.trainable for v in frozen)
    fast.compile(optimizer="rmsprop", loss="binary_crossentropy")
    fast.fit(ids, np.array([0, 1, 0, 1, 1, 0], "float32"), epochs=1, verbose=0)
    for variable in frozen:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), np.eye(16, dtype="float32"))


@pytest.mark.parametrize("name", sorted(PADDING_INVARIANT))
def test_padding_invariant_recipes_score_a_review_the_same_whatever_padding_follows(name: str) -> None:
    # What makes length bucketing safe: the trainer pads each batch only to its longest review.
    from reviewlens.families import get_family

    recipe = _small(name)
    family = get_family(recipe.family)
    config = dict(recipe.model)
    if config.pop("pretrained", None):
        config["pretrained"] = np.random.default_rng(1).normal(size=(50, 6)).astype("float32")
    assert family.padding_invariant(dict(recipe.model))  # type: ignore[attr-defined]
    keras.utils.set_random_seed(2)
    model = family.model().build(50, 40, **config)  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    lengths = [0, 1, 5, 9, 12]
    ids = np.zeros((len(lengths), 12), "int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 50, size=length)
    padded = np.pad(ids, [(0, 0), (0, 28)])  # 28 more padding steps
    np.testing.assert_allclose(model.predict(padded, verbose=0), model.predict(ids, verbose=0), atol=1e-5)


def test_bucketing_by_default_only_for_long_padding_invariant_sequences() -> None:
    from reviewlens.families.sequence import BUCKET_MIN_LENGTH, bucketing

    def vectorizer(length: int, padding: str = "tail") -> SequenceVectorizer:
        return SequenceVectorizer(max_tokens=10, length=length, truncate="tail", padding=padding)  # type: ignore[arg-type]

    masked, unmasked = get_recipe("bilstm-masked"), get_recipe("bilstm-embedding")
    assert bucketing(masked, vectorizer(600), None)
    assert not bucketing(masked, vectorizer(BUCKET_MIN_LENGTH), None)  # short: not worth it by default
    assert bucketing(masked, vectorizer(BUCKET_MIN_LENGTH), True)
    assert not bucketing(masked, vectorizer(600), False)
    assert not bucketing(masked, vectorizer(600, padding="head"), True)  # head padding moves the review
    assert not bucketing(unmasked, vectorizer(600), True)  # its scores depend on the padding
