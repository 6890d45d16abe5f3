"""The trainable tokenization layer: its three computations agree, it saves and reloads, its family trains."""

from __future__ import annotations

import csv
import json
import random
import runpy
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens
from reviewlens.families.characters import GRADS_LOG, PATTERNS_LOG, VALS_LOG, published_split
from reviewlens.models import tokenization as tok
from reviewlens.models.characters import build
from reviewlens.recipes import get_recipe
from reviewlens.text.characters import CharacterEncoder, categories, count_grams, greedy_cover, one_hot_str
from reviewlens.text.keras import keras_layers
from reviewlens.training import train

from .conftest import NEGATIVE, NEUTRAL, POSITIVE, TRAP, make_review, write_jsonl
from .test_cli import run as run_cli


def _one_hot(ids: np.ndarray, num_chars: int) -> tf.Tensor:
    return tf.transpose(tf.one_hot(ids, num_chars + 1)[:, :, :num_chars], [0, 2, 1])[..., None]


def _patterns(rng: np.random.Generator, num_chars: int, length: int, n: int) -> np.ndarray:
    """Random patterns with every kind of column: characters, trailing and inner wildcards, all-wildcard ones."""
    w = rng.normal(0.5, 0.3, (num_chars, length, 1, n)).astype(np.float32)
    w[:, length - 1, 0, : n // 3] = -0.3  # a trailing wildcard
    w[:, 0, 0, n // 3] = -0.3  # a wildcard before characters (the general path)
    w[:, :, 0, n - 1] = -0.3  # all wildcards: matches every window
    return w


def _map_and_grad(fn: object, x: tf.Tensor, w: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    patterns = tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch(patterns)
        out = fn(x, patterns)  # type: ignore[operator]
        loss = tf.reduce_sum(out * upstream)
    return out.numpy(), tape.gradient(loss, patterns).numpy()


@pytest.mark.parametrize(("num_chars", "length", "n", "text"), [(3, 3, 9, 25), (5, 4, 12, 40), (4, 6, 6, 5)])
def test_gather_and_dense_give_the_same_map_and_gradients(num_chars: int, length: int, n: int, text: int) -> None:
    rng = np.random.default_rng(num_chars * 100 + length)
    ids = rng.integers(0, num_chars + 1, (3, text)).astype(np.int32)  # blanks included
    w = _patterns(rng, num_chars, length, n)
    upstream = rng.normal(size=(3, n, text, 1)).astype(np.float32)
    dense, dense_grad = _map_and_grad(tok.tokenize_dense, _one_hot(ids, num_chars), w, upstream)
    gather, gather_grad = _map_and_grad(lambda x, p: tok.tokenize_gather(x, p), tf.constant(ids), w, upstream)
    assert dense.shape == (3, n, text, 1)
    np.testing.assert_array_equal(gather, dense)
    if text >= length:
        np.testing.assert_allclose(gather_grad, dense_grad, rtol=1e-5, atol=1e-5)
        assert dense.sum() > 0 and np.abs(dense_grad).sum() > 0  # the comparison is not between zeros
    else:  # a text shorter than a pattern: no window, no match, no gradient (TensorFlow's empty convolution
        # gives an undefined filter gradient, NaN or leftovers: the gather path defines it)
        assert dense.sum() == 0 and not gather_grad.any()


def test_counting_equals_the_map_summed_and_counting_substrings() -> None:
    rng = np.random.default_rng(5)
    num_chars, length, n = 3, 4, 16
    ids = rng.integers(0, num_chars + 1, (4, 60)).astype(np.int32)
    w = _patterns(rng, num_chars, length, n)
    w[:, 0, 0, n // 3] = 0.5  # counting reads a pattern up to its first wildcard: no inner wildcards here
    w[:, :, 0, 2] = w[:, :, 0, 3]  # two patterns reading the same share a count
    upstream = rng.normal(size=(4, n)).astype(np.float32)
    counted, counted_grad = _map_and_grad(lambda x, p: tok.count_tokens(x, p), tf.constant(ids), w, upstream)
    summed, summed_grad = _map_and_grad(
        lambda x, p: tf.reduce_sum(tok.tokenize_gather(x, p)[..., 0], axis=2), tf.constant(ids), w, upstream
    )
    np.testing.assert_array_equal(counted, summed)
    np.testing.assert_allclose(counted_grad, summed_grad, rtol=1e-5, atol=1e-5)
    # And by hand: occurrences of each pattern's string that start at a full window (blanks never match).
    alphabet = "abc"
    decoded = tok.decode_patterns(w, alphabet)
    for b in range(len(ids)):
        text = "".join(alphabet[i] if i < num_chars else "_" for i in ids[b])
        for i, pattern in enumerate(decoded[:-1]):
            string = pattern.split(tok.BLANK_COLUMN)[0]
            expected = sum(text.startswith(string, t) for t in range(len(text) - length + 1))
            assert counted[b, i] == expected, (pattern, text)
    assert counted[:, -1].tolist() == [60 - length + 1] * 4  # the all-wildcard pattern: every window


def test_counting_scales_past_a_64_bit_key() -> None:
    # 30 characters, 13 columns: 30**13 > 2**63, so keys are numbered level by level, not as base-30 numbers.
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, (2, 400)).astype(np.int32)
    w = np.full((30, 13, 1, 2), 0.25, np.float32)
    for i, start in enumerate((10, 200)):
        w[ids[0, start : start + 13], np.arange(13), 0, i] = 0.75  # the text's own 13 characters at ``start``
    counts = tok.count_tokens(tf.constant(ids), tf.constant(w)).numpy()
    assert counts[0].tolist() == [1.0, 1.0]


def test_one_hot_str_and_the_alphabet() -> None:
    matrix = one_hot_str("abca?", "abc")
    assert matrix.shape == (3, 5)
    assert matrix[:, 4].tolist() == [0, 0, 0]  # outside the alphabet: an all-zero column
    assert matrix[:, :4].argmax(axis=0).tolist() == [0, 1, 2, 0]
    unk = one_hot_str("ab?", "a<UNK>b")
    assert categories("a<UNK>b") == ["a", "<UNK>", "b"] and unk[:, 2].tolist() == [0, 1, 0]
    assert one_hot_str("", "abc").shape == (3, 0)


def test_character_ids_layer_equals_the_encoder() -> None:
    rng = random.Random(2)
    texts = [make_review(rng, i % 2) for i in range(20)] + ["", "!!!", "A<br />B", *TRAP, "Caf\u00e9 \u00c9T\u00c9"]
    for drop in (True, False):
        encoder = CharacterEncoder(length=50, size=20, drop_unknown=drop).fit(texts)
        (layer,) = keras_layers(encoder)
        keras_ids = np.asarray(layer(tf.constant([[t] for t in texts])))
        np.testing.assert_array_equal(keras_ids, encoder.transform(texts))
    assert (encoder.transform([""]) == encoder.blank).all()


def test_max_cover_initializers() -> None:
    corpus = ["a cat and the dog the bird the fish"] * 5
    alphabet = "".join(sorted(set("".join(corpus))))
    published = tok.PatternsInitilizerMaxCover(corpus, alphabet, gram_lens=[3, 5], seed=0)
    assert tok.PatternsInitilizerMaxCover is tok.PatternsInitializerMaxCover
    w = np.asarray(published((len(alphabet), 5, 1, 40)))
    assert w.shape == (len(alphabet), 5, 1, 40)
    assert 0.2 < np.median(w) < 0.3 and 0.6 < w.max(axis=0).mean() < 0.9  # 0s ~ N(0.25), 1s ~ N(0.75)
    wildcard = tok.PatternsInitializerMaxCover(
        corpus, alphabet, gram_lens=[3, 5], strategy="greedy", padding="wildcard"
    )
    w = np.asarray(wildcard((len(alphabet), 5, 1, 3)))
    decoded = tok.decode_patterns(w, alphabet)
    # Greedy: the first pattern covers the most text; a 3-gram is padded with wildcards.
    assert all(len(p.rstrip(tok.BLANK_COLUMN)) in (3, 5) for p in decoded)
    grams = count_grams(wildcard._corpus, len(alphabet), [3, 5])
    first = greedy_cover(wildcard._corpus, grams, 1, len(alphabet))[0]
    assert "".join(alphabet[i] for i in first) == decoded[0].rstrip(tok.BLANK_COLUMN) == " the "


def _published_size(num_chars: int = 6, length: int = 40) -> keras.Model:
    corpus = ["abc abd abe bcd"] * 3
    return build("published", num_chars, length, alphabet="abcde ", corpus=corpus, patterns=8, pattern_len=4,
                 gram_lens=[2, 3, 4], dense=4)  # fmt: skip


@pytest.mark.parametrize("kind", ["published", "pooled", "cnn"])
def test_models_save_and_reload_predicting_the_same(kind: str, tmp_path: Path) -> None:
    corpus = ["abc abd abe bcd"] * 3
    model = build(kind, 6, 40, alphabet="abcde ", corpus=corpus, patterns=8, pattern_len=4, gram_lens=[2, 3, 4],
                  dense=4, filters=4, kernel_size=3, constrain=kind == "pooled")  # fmt: skip
    ids = np.random.default_rng(0).integers(0, 7, (5, 40)).astype(np.int32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), rtol=1e-6)


def test_published_split_is_seventy_fifteen_fifteen() -> None:
    train_rows, val_rows, test_rows = published_split(50_000)
    assert (len(train_rows), len(val_rows), len(test_rows)) == (35_000, 7_500, 7_500)
    assert len(set(train_rows) | set(val_rows) | set(test_rows)) == 50_000


# -- the family, end to end, on tiny data ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(4)
    records = [
        {"text": make_review(rng, i % 2), "label": i % 2, "split": "train" if i < 80 else "test"} for i in range(120)
    ]
    return write_jsonl(tmp_path_factory.mktemp("chars") / "tiny.jsonl", records)


def _small(name: str, **model: object) -> object:
    import dataclasses

    recipe = get_recipe(name)
    return dataclasses.replace(recipe, model={**recipe.model, **model}, batch_size=16)


class _KilledError(Exception):
    pass


def test_the_published_loop_logs_and_resumes_after_a_failure(tiny: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    recipe = _small("char-tokenization", patterns=20)
    options = {"max_length": 120, "log_patterns": logs}
    first: list[dict[str, float]] = []

    def fail_after_one_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        first.append(logs)
        raise _KilledError

    with pytest.raises(_KilledError):
        train(recipe, tiny, tmp_path / "run", epochs=2, options=options, on_epoch=fail_after_one_epoch)  # type: ignore[arg-type]
    columns = (logs / VALS_LOG).read_text().splitlines()[0].split(",")
    assert columns[:8] == [f"{n} {s}" for n in ("Out", "Dense", "Embedding", "Tokenization") for s in ("Mean", "Std")]
    assert columns[-2:] == ["Patterns Mean", "Patterns Std"] and "Out Kernel Mean" in columns
    steps = len((logs / GRADS_LOG).read_text().splitlines()) - 1
    assert steps == 4  # 64 training reviews in batches of 16: a row per step
    lines = (logs / PATTERNS_LOG).read_text().splitlines()
    assert len(lines) == 1 and len(json.loads(f"[{lines[0]}]")) == 20  # every 10 steps: all 20 patterns
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.partial" / "checkpoint.npz").is_file()

    # The one resume mechanism (the staging directory's checkpoint); the logs continue.
    resumed = train(recipe, tiny, tmp_path / "run", epochs=2, options=options, resume=True)  # type: ignore[arg-type]
    history = json.loads((resumed.run_dir / "history.json").read_text())
    assert len(history["loss"]) == 2 and history["loss"][0] == first[0]["loss"]
    assert len((logs / GRADS_LOG).read_text().splitlines()) - 1 == 2 * steps
    assert not (tmp_path / ".run.partial").exists()
    run = reviewlens.load(resumed.run_dir)
    scores = run.predict(["", "a", "Wonderful, superb film!", "x" * 5000])  # empty, shorter than a pattern, long
    assert scores.shape == (4,) and np.isfinite(scores).all()


def test_the_pooled_recipe_learns_and_serves_like_any_run(tiny: Path, tmp_path: Path) -> None:
    recipe = _small("char-tokens", patterns=200)
    result = train(recipe, tiny, tmp_path / "run", epochs=8, options={"max_length": 200})  # type: ignore[arg-type]
    history = json.loads((result.run_dir / "history.json").read_text())
    assert history["loss"][-1] < 0.8 * history["loss"][0]  # it learns
    assert result.metadata.test_accuracy >= 0.6
    run = reviewlens.load(result.run_dir)
    predictions = np.load(result.run_dir / "predictions.npz")
    texts, _ = reviewlens.data.Dataset(tiny).read("test")
    np.testing.assert_allclose(run.predict(texts), predictions["test_probabilities"], atol=1e-5)
    # The model library's path: token ids through the model after its text layers.
    encoder = run.predictor.preprocessor
    ids = encoder.transform_ids([encoder.token_ids(encoder.tokenize(t)) for t in texts])
    np.testing.assert_allclose(run.predictor.predict_vectors(ids)[:, 1], run.predict(texts), atol=1e-5)


def test_character_options_mistakes_are_one_line(tiny: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    for args, message in [
        (["--log-patterns", str(blocked / "logs")], "cannot write there"),
        (["--resume"], "no killed run of"),
        (["--split", "other"], "other"),
    ]:
        result = run_cli("train", "--recipe", "char-tokens", "--data", str(tiny), "--out", str(tmp_path / "o"), *args)
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert message in output and "Traceback" not in output


# -- the published package's import name and its IMDB example ----------------------------------------


def test_one_hot_str_of_a_string_tensor_equals_numpy_and_maps_over_a_dataset() -> None:
    for chars in ("abc ", "a<UNK>bc", "\u00e9t "):
        for text in ("abca? cab", "", "\u00e9t\u00e9 caf\u00e9"):
            tensor = tok.one_hot_str(tf.constant(text), chars)
            assert tensor.dtype == tf.int32
            np.testing.assert_array_equal(tensor.numpy(), one_hot_str(text, chars))
    assert isinstance(tok.one_hot_str("abc", "abc"), np.ndarray)  # a Python string: NumPy, as before
    # Inside tf.data the text is a symbolic tensor (the published example's ``X.map(one_hot)``).
    dataset = tf.data.Dataset.from_tensor_slices(["abc", "cab a"]).map(lambda x: tok.one_hot_str(x, "abc "))
    assert dataset.element_spec.shape.as_list() == [4, None]
    assert [m.numpy().tolist() for m in dataset] == [one_hot_str(t, "abc ").tolist() for t in ("abc", "cab a")]
    with pytest.raises(ValueError, match="one string"):
        tok.one_hot_str(tf.constant(["a", "b"]), "ab")


def _initializer(**kwargs: object) -> tok.PatternsInitializerMaxCover:
    return tok.PatternsInitializerMaxCover(["abc abd abe bcd"] * 3, "abcde ", gram_lens=[2, 3], seed=0, **kwargs)  # type: ignore[arg-type]


def test_a_one_hot_input_taller_than_the_alphabet_builds_and_reads_the_same_text() -> None:
    # The published example builds on tf.zeros([32, 31, 2000, 1]) and trains on 30-row one-hot text.
    ids = CharacterEncoder("abcde ", length=20).transform(["abc abd abe bcd", "bcd abc", "e"])  # 6 characters, blanks
    for implementation in tok.IMPLEMENTATIONS:
        layer = tok.TokenizationLayer(
            5, _initializer(padding="wildcard"), pattern_lens=3, implementation=implementation
        )
        with pytest.warns(UserWarning, match="7 rows for patterns of 6 characters"):
            built = layer(tf.zeros([2, 7, 20, 1]))
        assert built.shape == (2, 5, 20, 1) and layer.patterns.shape == (6, 3, 1, 5)
        fitted = layer(_one_hot(ids, 6))
        assert fitted.shape == (3, 5, 20, 1) and np.asarray(fitted).any()
        taller = np.asarray(_one_hot(ids, 6))
        taller = np.concatenate([taller, np.zeros_like(taller[:, :1])], axis=1)
        taller[0, :, 0, 0], taller[0, 6, 0, 0] = 0, 1  # a character in the 7th row: outside the alphabet
        blanked = ids.copy()
        blanked[0, 0] = 6
        np.testing.assert_array_equal(layer(taller), layer(_one_hot(blanked, 6)))


class _Traced(keras.Model):
    """A subclassed model, which Keras builds by tracing its call (deferring its variables' initializers)."""

    def __init__(self, pattern_lens: int) -> None:
        super().__init__()
        self.tokenization = tok.TokenizationLayer(4, _initializer(padding="wildcard"), pattern_lens=pattern_lens)
        self.flatten = keras.layers.Flatten()
        self.batch_norm = keras.layers.BatchNormalization()
        self.dense = keras.layers.Dense(1)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.dense(self.batch_norm(self.flatten(self.tokenization(x)), training=training))


def test_a_failed_build_leaves_the_next_model_whole() -> None:
    # An initializer that raised while Keras traced a model's build stayed in Keras' global list of variables to
    # initialize: the next traced model's variables were never made (each call drew fresh patterns), and its
    # BatchNormalization failed in training with "'NoneType' object has no attribute 'assign'".
    x = _one_hot(CharacterEncoder("abcde ", length=10).transform(["abc abd", "bcd abe", "e", "abcde"]), 6)
    with pytest.raises(ValueError, match="do not fit 6 characters and grams up to 3 long"):
        _Traced(pattern_lens=2)(x)  # grams up to 3 long: patterns of 2 columns are too short
    model = _Traced(pattern_lens=3)
    model(x)
    before = np.asarray(model.batch_norm.moving_mean).copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True) ** 2)
    assert all(g is not None for g in tape.gradient(loss, model.trainable_variables))
    assert not np.allclose(np.asarray(model.batch_norm.moving_mean), before)  # its statistics updated
    np.testing.assert_array_equal(model(x), model(x))  # real weights, not a fresh draw per call


#: The published example as a user pastes it (the header comment says what differs from the published cells).
EXAMPLE = Path(__file__).with_name("examples") / "tokenization_layer_imdb.txt"


def _sized(example: str, **sizes: tuple[str, str]) -> str:
    """The example with the sizes it leaves to its user made small; each must be found where the example has it."""
    for name, (published, small) in sizes.items():
        assert published in example, name
        example = example.replace(published, small)
    return example


def _imdb_csv(path: Path, n: int) -> Path:
    """A CSV of the 50,000-review file's columns: ASCII reviews with its HTML breaks and punctuation."""
    rng = random.Random(11)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        for i in range(n):
            words = [rng.choice(NEUTRAL) for _ in range(rng.randint(15, 40))]
            for _ in range(3):
                words.insert(rng.randrange(len(words)), rng.choice(POSITIVE if i % 2 else NEGATIVE))
            text = " ".join(words).capitalize().replace(" the ", ", the <br /><br />", 1) + "!"
            writer.writerow([text, "positive" if i % 2 else "negative"])
    return path


def test_the_published_example_runs_with_only_its_import_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    example = EXAMPLE.read_text(encoding="utf-8")
    assert "\nfrom reviewlens import tokenization_layer\n" in example and "\nimport tokenization_layer" not in example
    # 40 reviews: 28 to train on in 7 batches of 4 (the checkpoint rule needs 5 or more), reviews cut at 300.
    pasted = _sized(
        example,
        length=("2000", "300"),
        batch=(".batch(32,", ".batch(4,"),
        neurons=("n_neurons=500", "n_neurons=20"),
        epochs=("epochs = 10", "epochs = 1"),
    )
    _imdb_csv(tmp_path / "IMDB Dataset.csv", 40)
    (tmp_path / "model_checkpoints").mkdir()  # the notebook's folder: the example writes into it, never makes it
    (tmp_path / "example.py").write_text(pasted, encoding="utf-8")  # tf.data's autograph reads the source
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="31 rows"):  # the build on 31 rows, for 30 characters or fewer
        namespace = runpy.run_path(str(tmp_path / "example.py"), run_name="__main__")
    logs = tmp_path / "model_checkpoints"
    n_chars = len(namespace["chars"])
    assert namespace["model"].tokenization.patterns.shape == (n_chars, 13, 1, 20)
    (line,) = (logs / "patterns_log.txt").read_text(encoding="utf-8").splitlines()  # step 0 of 7
    patterns = json.loads(f"[{line.rstrip(', ')}]")
    assert len(patterns) == 20 and all(len(p) == 13 for p in patterns)
    grads = (logs / "grads_log.csv").read_text().splitlines()
    values = (logs / "vals_log.csv").read_text().splitlines()
    assert len(grads) == len(values) == 1 + 7  # the header, then a row per step
    rows = [[float(v) for v in row.rstrip(",").split(",")] for row in grads[1:] + values[1:]]
    assert all(len(row) == 20 and np.isfinite(row).all() for row in rows)
    assert any(row[-1] != 0 for row in rows[:7])  # the patterns' gradient is not all zeros
    assert sorted(p.name for p in logs.glob("model_cp_*")) == [f"model_cp_{i}" for i in range(2, 8)]
    assert namespace["train_acc_metric"].count == 0  # reset at the epoch's end
