"""Pretraining on unlabeled reviews and the pretrained family: the loss falls, a killed pretraining resumes to the
same encoder, a fine-tuned run loads in safe mode and predicts as its .keras model, VAT's term is what it claims,
and every bad encoder or data is one line with exit code 2."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens
from reviewlens.checkpoints import staging_dir
from reviewlens.data import Dataset
from reviewlens.evaluation import metrics
from reviewlens.pretraining import (
    ENCODER_FILE,
    METADATA_FILE,
    OUTPUT_FILE,
    OUTPUT_WARMUP_STEPS,
    VOCABULARY_FILE,
    Sizes,
    continued_sizes,
    load_encoder,
    pretrain,
)
from reviewlens.recipes import get_recipe
from reviewlens.training import train

from .conftest import make_review, write_aclimdb, write_csv

SMALL = Sizes(vocabulary=200, embedding=8, units=8, dense=8, length=12, batch_size=16, sampled=32, learning_rate=1e-2)
HELD_OUT_WORD = "zzheldoutword"  # only in validation and test reviews: pretraining must never see it


def _with_unsup(base: Path, count: int = 60) -> Path:
    rng = random.Random(11)
    (base / "train" / "unsup").mkdir()
    for i in range(count):
        (base / "train" / "unsup" / f"{i}_0.txt").write_text(make_review(rng, i % 2), encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = _with_unsup(write_aclimdb(tmp_path_factory.mktemp("data"), {"train": 40, "test": 15}, bad_utf8=False))
    dataset = Dataset(base)
    for id in dataset.ids("validation") | dataset.ids("test"):
        path = base / id
        path.write_text(f"{HELD_OUT_WORD} " + path.read_text(encoding="utf-8"), encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def encoder_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoders") / "lm"
    pretrain(data, out, sizes=SMALL, epochs=4)
    return out


def test_pretraining_learns_from_train_and_unsup_only_and_writes_a_safe_mode_encoder(
    data: Path, encoder_dir: Path
) -> None:
    metadata = json.loads((encoder_dir / METADATA_FILE).read_text())
    assert metadata["loss"][-1] < metadata["loss"][0]  # the language model learns
    assert metadata["val_perplexity"][-1] < metadata["val_perplexity"][0]
    dataset = Dataset(data)
    assert (metadata["data"]["train"], metadata["data"]["unsup"]) == (len(dataset.ids("train")), 60)
    words = json.loads((encoder_dir / VOCABULARY_FILE).read_text())
    assert HELD_OUT_WORD not in words and "wonderful" in words  # validation and test texts never read
    assert metadata["tokens_seen"] > 0 and metadata["seconds"] > 0 and metadata["format_version"] == 1
    plain = keras.saving.load_model(encoder_dir / ENCODER_FILE, safe_mode=True)
    encoder = load_encoder(encoder_dir)
    ids = encoder.vectorizer.transform(["a wonderful film", "dull"])
    np.testing.assert_allclose(plain(ids), encoder.model(ids), atol=1e-6)


class _KilledError(Exception):
    pass


def test_a_killed_pretraining_resumes_to_the_same_encoder(data: Path, tmp_path: Path) -> None:
    sizes = dataclasses.replace(SMALL, objective="mlm", batch_size=32)  # mlm draws random masks: resumed too
    whole = pretrain(data, tmp_path / "whole", sizes=sizes, epochs=2, checkpoint_steps=2)
    steps: list[int] = []

    def kill(step: int, total: int, loss: float) -> None:
        steps.append(step)
        if len(steps) == total + 3:  # into the second epoch, one step past its checkpoint at step 2
            raise _KilledError

    with pytest.raises(_KilledError):
        pretrain(data, tmp_path / "cut", sizes=sizes, epochs=2, checkpoint_steps=2, on_step=kill)
    assert staging_dir(tmp_path / "cut").is_dir() and not (tmp_path / "cut").exists()
    resumed_at: list[int] = []
    again = pretrain(data, tmp_path / "cut", sizes=sizes, epochs=2, checkpoint_steps=2, resume=True,
                     on_step=lambda step, total, loss: resumed_at.append(step))  # fmt: skip
    assert resumed_at[0] == 3 and again["resumed"]  # continued after the checkpoint, not from the start
    assert again["tokens_seen"] == whole["tokens_seen"]
    np.testing.assert_allclose(again["loss"], whole["loss"], rtol=1e-5)
    before, after = load_encoder(tmp_path / "whole").model, load_encoder(tmp_path / "cut").model
    for a, b in zip(before.get_weights(), after.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fine_tuned_run_loads_in_safe_mode_and_predicts_as_its_keras_model(
    data: Path, encoder_dir: Path, tmp_path: Path
) -> None:
    result = train("pretrained-vat", data, tmp_path / "run", epochs=1,
                   options={"encoder": encoder_dir, "max_length": 24})  # fmt: skip
    metadata = result.metadata
    assert metadata.family == "pretrained" and len(metadata.metrics["validation"]) > 0
    assert (
        metadata.hyperparameters["encoder_vocabulary_digest"] == load_encoder(encoder_dir).metadata["vocabulary_digest"]
    )
    texts, labels = Dataset(data).read("test")
    run = reviewlens.load(result.run_dir)
    assert metrics(run.predict(texts), labels)["loss"] == pytest.approx(metadata.metrics["test"]["loss"], abs=1e-5)
    plain = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    samples = ["", "A wonderful, superb film.", *texts[:5]]
    direct = np.asarray(plain(tf.constant([[t] for t in samples]))).reshape(-1)
    np.testing.assert_allclose(run.predict(samples), direct, atol=1e-6)


def test_reverse_tokens_reads_each_review_from_its_end_and_keeps_the_padding_last() -> None:
    from reviewlens.models.layers import ReverseTokens
    from reviewlens.pretraining import review_ids
    from reviewlens.text.sequences import SequenceVectorizer

    ids = np.array([[5, 6, 7, 0, 0], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0], [3, 4, 5, 6, 7]], np.int32)
    reverse = ReverseTokens()
    flipped = np.asarray(reverse(ids))
    np.testing.assert_array_equal(flipped, [[7, 6, 5, 0, 0], [2, 1, 0, 0, 0], [0, 0, 0, 0, 0], [7, 6, 5, 4, 3]])
    np.testing.assert_array_equal(np.asarray(reverse(flipped)), ids)  # its own inverse
    vectorizer = SequenceVectorizer(max_tokens=50, length=8).fit(["a good film", "a bad film"])
    forward = review_ids(vectorizer, ["a good film indeed"], keep=3)
    assert review_ids(vectorizer, ["a good film indeed"], keep=3, backward=True) == [forward[0][::-1]]


def test_a_backward_encoder_pretrains_and_its_classifier_reads_reviews_from_their_end(
    data: Path, tmp_path: Path
) -> None:
    backward = dataclasses.replace(SMALL, direction="backward")
    metadata = pretrain(data, tmp_path / "backward", sizes=backward, epochs=2)
    assert metadata["sizes"]["direction"] == "backward" and metadata["loss"][-1] < metadata["loss"][0]
    result = train("pretrained-vat", data, tmp_path / "run", epochs=1,
                   options={"encoder": tmp_path / "backward", "max_length": 16})  # fmt: skip
    assert result.metadata.hyperparameters["encoder_direction"] == "backward"
    plain = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    core = next(layer for layer in plain.layers if isinstance(layer, keras.Model))
    assert "reverse_tokens" in [layer.name for layer in core.layers]
    samples = ["A wonderful, superb film.", "dull, dull, dull and then a wonderful end", ""]
    direct = np.asarray(plain(tf.constant([[t] for t in samples]))).reshape(-1)
    np.testing.assert_allclose(reviewlens.load(result.run_dir).predict(samples), direct, atol=1e-6)
    with pytest.raises(reviewlens.ReviewlensError, match="--direction backward is for the language model"):
        dataclasses.replace(SMALL, objective="mlm", direction="backward")


def test_a_killed_fine_tuning_resumes_to_the_same_run(data: Path, encoder_dir: Path, tmp_path: Path) -> None:
    options = {"encoder": encoder_dir, "max_length": 16}
    whole = train("pretrained-vat", data, tmp_path / "whole", epochs=2, options=options)

    def kill(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        if epoch == 1:
            raise _KilledError

    with pytest.raises(_KilledError):
        train("pretrained-vat", data, tmp_path / "cut", epochs=2, options=options, on_epoch=kill)
    again = train("pretrained-vat", data, tmp_path / "cut", epochs=2, options=options, resume=True)
    assert again.metadata.hyperparameters["resumed_after_epoch"] == 1
    history = [json.loads((run / "history.json").read_text()) for run in (tmp_path / "whole", tmp_path / "cut")]
    for key in ("loss", "vat_loss", "val_loss"):  # the dropout's and the optimizers' state resumed too
        np.testing.assert_allclose(history[1][key], history[0][key], rtol=1e-5)
    assert again.metadata.test_accuracy == whole.metadata.test_accuracy


def _tuner(encoder_dir: Path, **model: object) -> object:
    from reviewlens.families.pretrained import _FineTuner

    recipe = get_recipe("pretrained-vat")
    recipe = dataclasses.replace(recipe, model={**recipe.model, **model})
    return _FineTuner(load_encoder(encoder_dir).model, recipe, 1, seed=5)


def _steps(tuner: object, batches: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    for batch in batches:
        tuner._step_all(*map(tf.constant, batch))  # type: ignore[attr-defined]  # eagerly: no tracing
    return tuner.model.get_weights()  # type: ignore[attr-defined]


def test_class_weights_weigh_the_fine_tuning_loss(data: Path, encoder_dir: Path, tmp_path: Path) -> None:
    losses = {}
    for weight in (None, "negative=20"):
        out = tmp_path / f"run-{weight}"
        run = train("pretrained-finetune", data, out, epochs=1, class_weight=weight,
                    options={"encoder": encoder_dir, "max_length": 16}).metadata  # fmt: skip
        losses[weight] = json.loads((out / "history.json").read_text())["loss"][0]
        assert (run.hyperparameters.get("class_weight") or {}).get("rule") == (weight and "negative=20,positive=1")
    # Half the reviews negative: the weighted loss is about (0.5 * 20 + 0.5) times the plain one at the start.
    assert losses["negative=20"] > 5 * losses[None], losses


def test_the_slanted_triangular_schedule_rises_then_falls_and_is_what_fine_tuning_steps_with(
    data: Path, encoder_dir: Path, tmp_path: Path
) -> None:
    from reviewlens.families.pretrained import slanted_triangular

    factors = [slanted_triangular(step, 100, 0.1, 32.0) for step in range(100)]
    assert factors[0] == pytest.approx(1 / 32) and max(factors) == factors[10] == 1.0
    assert all(a < b for a, b in itertools.pairwise(factors[:11]))  # up for the first tenth
    assert all(a > b for a, b in itertools.pairwise(factors[10:])) and factors[-1] < 0.05  # then down
    result = train("pretrained-finetune", data, tmp_path / "slanted", epochs=1,
                   options={"encoder": encoder_dir, "max_length": 16, "lr_schedule": "slanted"})  # fmt: skip
    assert result.metadata.hyperparameters["lr_schedule"] == "slanted"
    plain = train("pretrained-finetune", data, tmp_path / "constant", epochs=1,
                  options={"encoder": encoder_dir, "max_length": 16})  # fmt: skip
    assert plain.metadata.hyperparameters["lr_schedule"] == "constant"
    scores = [np.load(tmp_path / name / "predictions.npz")["test_probabilities"] for name in ("slanted", "constant")]
    assert not np.allclose(*scores)  # same seed and data: the schedule alone changed what was learned


def test_vat_with_zero_epsilon_is_plain_training_and_a_positive_one_is_not(encoder_dir: Path) -> None:
    vectorizer = load_encoder(encoder_dir).vectorizer
    rng = random.Random(2)
    ids = vectorizer.transform([make_review(rng, i % 2) for i in range(24)])
    y = np.array([i % 2 for i in range(24)], np.float32)
    noise = np.random.default_rng(0).normal(size=(*ids.shape, 8)).astype(np.float32)
    batches = [(ids[i : i + 8], y[i : i + 8], np.ones(8, np.float32), ids, noise) for i in range(0, 24, 8)]
    plain = _steps(_tuner(encoder_dir, vat_weight=0.0), batches)
    zero = _steps(_tuner(encoder_dir, vat_weight=1.0, vat_epsilon=0.0), batches)
    adversarial = _steps(_tuner(encoder_dir, vat_weight=1.0, vat_epsilon=2.0), batches)
    for a, b in zip(plain, zero, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert any(not np.allclose(a, b, atol=1e-5) for a, b in zip(plain, adversarial, strict=True))


def test_the_adversarial_direction_raises_kl_more_than_random_ones(encoder_dir: Path) -> None:
    from reviewlens.models.pretrained import _label_kl, _unit, adversarial_direction

    tuner = _tuner(encoder_dir)
    tail, embedding = tuner.tail, tuner.embedding  # type: ignore[attr-defined]
    rng = random.Random(4)
    ids = tf.constant(load_encoder(encoder_dir).vectorizer.transform([make_review(rng, i % 2) for i in range(16)]))
    vectors = embedding(ids)
    clean = tail([vectors, ids], training=False)
    noise = np.random.default_rng(1)

    def kl(direction: object) -> float:
        return float(np.mean(_label_kl(clean, tail([vectors + 1.0 * direction, ids], training=False))))

    start = tf.constant(noise.normal(size=vectors.shape), tf.float32)
    adversarial = kl(adversarial_direction(tail, vectors, ids, clean, tuner.xi, start))  # type: ignore[attr-defined]
    randoms = [kl(_unit(tf.constant(noise.normal(size=vectors.shape), tf.float32), ids)) for _ in range(5)]
    assert adversarial > 10 * max(randoms)
    # The recipe's xi is large enough for float32: its direction is the one a coarser finite difference finds
    # (xi 1e-6 lost most of it to rounding: KL 0.0010 where 1e-4 to 1e-1 gave 0.0093).
    assert adversarial > 0.9 * kl(adversarial_direction(tail, vectors, ids, clean, 0.1, start))


def test_continuing_an_encoder_starts_where_it_stopped(data: Path, encoder_dir: Path, tmp_path: Path) -> None:
    base = json.loads((encoder_dir / METADATA_FILE).read_text())
    # A step too small to move anything: the continued encoder measures the perplexity the first one ended at, so
    # its weights, vocabulary and output layer all came along (a new output layer would be near the vocabulary size).
    still = continued_sizes(encoder_dir, {"learning_rate": 1e-12})
    assert (still.units, still.vocabulary, still.length) == (SMALL.units, SMALL.vocabulary, SMALL.length)
    same = pretrain(data, tmp_path / "same", sizes=still, epochs=1, start=encoder_dir)
    np.testing.assert_allclose(same["val_perplexity"][0], base["val_perplexity"][-1], rtol=1e-4)
    assert same["continued_from"]["output_layer"] == "kept" and same["vocabulary_digest"] == base["vocabulary_digest"]
    assert same["tokens_seen_total"] == base["tokens_seen"] + same["tokens_seen"]
    # At the encoder's own rate it goes on learning.
    more = pretrain(data, tmp_path / "more", sizes=continued_sizes(encoder_dir, {}), epochs=2, start=encoder_dir)
    assert more["val_perplexity"][-1] < base["val_perplexity"][-1]


def test_an_encoder_without_an_output_layer_gets_a_new_one_trained_alone_first(
    data: Path, encoder_dir: Path, tmp_path: Path
) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(encoder_dir, old)
    (old / OUTPUT_FILE).unlink()  # as written before the output layer was kept (and the checksums)
    metadata = json.loads((old / METADATA_FILE).read_text())
    del metadata["files"]
    (old / METADATA_FILE).write_text(json.dumps(metadata))
    logged: list[str] = []
    continued = pretrain(data, tmp_path / "new", sizes=continued_sizes(old, {}), epochs=1, start=old, log=logged.append)
    assert continued["tokens_seen"] < OUTPUT_WARMUP_STEPS * SMALL.batch_size * SMALL.length  # all within the warm-up
    assert continued["continued_from"]["output_layer"] == "new"
    assert any(OUTPUT_FILE in line and "alone" in line for line in logged)
    before, after = load_encoder(old).model, load_encoder(tmp_path / "new")
    for a, b in zip(before.get_weights(), after.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the encoder did not move while the new layer learned
    assert after.output is not None and np.abs(after.output[1]).sum() > 0  # the layer did (its bias starts at 0)


def test_pretraining_goes_on_on_a_users_unlabeled_csv(
    encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    own = write_csv(tmp_path / "mine.csv", [(make_review(rng, i % 2),) for i in range(30)], header=("review",))  # type: ignore[misc]
    code, stderr = _cli("pretrain", "--data", str(own), "--from", str(encoder_dir), "--out", str(tmp_path / "mine"),
                        "--json", capsys=capsys, monkeypatch=monkeypatch)  # fmt: skip
    assert code == 0, stderr
    metadata = json.loads((tmp_path / "mine" / METADATA_FILE).read_text())
    assert (metadata["data"]["train"], metadata["data"]["unsup"]) == (0, 30)
    assert metadata["continued_from"]["output_layer"] == "kept" and metadata["tokens_seen"] > 0
    assert load_encoder(tmp_path / "mine").vectorizer.words == load_encoder(encoder_dir).vectorizer.words
    _one_line(_cli("train", "--recipe", "pretrained-vat", "--data", str(own), "--encoder", str(tmp_path / "mine"),
                   "--out", str(tmp_path / "run"), capsys=capsys, monkeypatch=monkeypatch),
              "holds only unlabeled reviews")  # fmt: skip


def _cli(*args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``reviewlens ARGS`` through the CLI's entry point, in this process (no TensorFlow start-up per case)."""
    from reviewlens import cli, processes

    monkeypatch.setattr(processes, "handle_signals", lambda: None)  # pytest keeps its own
    monkeypatch.setattr(sys, "argv", ["reviewlens", *args])
    monkeypatch.delenv("REVIEWLENS_DATA", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        cli.main()
    return int(exit.value.code or 0), capsys.readouterr().err


def _one_line(result: tuple[int, str], *words: str) -> None:
    code, stderr = result
    assert code == 2, stderr
    line = stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: ") and "Traceback" not in line, line
    assert all(word in line for word in words), line


def _rewrite_encoder_weights(directory: Path) -> None:
    """The encoder's weights changed inside a well-formed ``encoder.keras`` (its zip's own checksums hold)."""
    import zipfile

    path = directory / ENCODER_FILE
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    weights = next(name for name in members if name.endswith(".h5"))
    spoiled = bytearray(members[weights])
    spoiled[-64:] = bytes(64)  # the end of the last array's data
    members[weights] = bytes(spoiled)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_bad_encoders_and_data_are_one_line_with_exit_code_2(
    data: Path, encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    def cli(*args: str) -> tuple[int, str]:
        return _cli(*args, capsys=capsys, monkeypatch=monkeypatch)

    no_unsup = write_aclimdb(tmp_path / "plain", {"train": 6, "test": 2}, bad_utf8=False)
    _one_line(cli("pretrain", "--data", str(no_unsup), "--out", str(tmp_path / "e"), "--require-unlabeled"),
              "no unlabeled reviews")  # fmt: skip
    assert not (tmp_path / "e").exists()

    def bad(name: str, spoil: object) -> Path:
        copy = tmp_path / name
        shutil.copytree(encoder_dir, copy)
        spoil(copy)  # type: ignore[operator]
        return copy

    cases = {
        "missing": (tmp_path / "nowhere", "no such directory"),
        "truncated": (bad("cut", lambda d: (d / ENCODER_FILE).write_bytes((d / ENCODER_FILE).read_bytes()[:500])),
                      "cannot be loaded"),
        "metadata": (bad("meta", lambda d: (d / METADATA_FILE).write_text("{not json")), "metadata.json is corrupt"),
        "version": (bad("version", lambda d: (d / METADATA_FILE).write_text(json.dumps(
            {**json.loads((d / METADATA_FILE).read_text()), "format_version": 99}))), "format version 99"),
        "vocabulary": (bad("vocab", lambda d: (d / VOCABULARY_FILE).write_text(json.dumps(
            list(reversed(json.loads((d / VOCABULARY_FILE).read_text())))))), "another vocabulary"),
        "device": (bad("zero", lambda d: ((d / METADATA_FILE).unlink(), (d / METADATA_FILE).symlink_to("/dev/zero"))),
                   "not a regular file"),
        "folder": (bad("folder", lambda d: ((d / VOCABULARY_FILE).unlink(), (d / VOCABULARY_FILE).mkdir())),
                   "not a regular file"),
        "fifo": (bad("fifo", lambda d: ((d / ENCODER_FILE).unlink(), os.mkfifo(d / ENCODER_FILE))),
                 "not a regular file"),
        "output": (bad("output", lambda d: (d / OUTPUT_FILE).write_bytes(b"PK\x03\x04 cut")), "output.npz"),
        "shape": (bad("shape", lambda d: np.savez(d / OUTPUT_FILE, weights=np.zeros((3, 2)), bias=np.zeros(3))),
                  "not the encoder's"),
        "weights": (bad("weights", _rewrite_encoder_weights), "encoder.keras does not match its checksum"),
        "unlisted": (bad("unlisted", lambda d: (d / METADATA_FILE).write_text(json.dumps(
            {**json.loads((d / METADATA_FILE).read_text()), "files": {}}))), "lists no checksum"),
    }  # fmt: skip
    for name, (path, words) in cases.items():
        result = cli("train", "--recipe", "pretrained-vat", "--data", str(data), "--encoder", str(path),
                      "--out", str(tmp_path / f"run-{name}"), "--epochs", "1", "--max-length", "16")  # fmt: skip
        _one_line(result, str(path), words)
    _one_line(cli("train", "--recipe", "pretrained-vat", "--data", str(data), "--out", str(tmp_path / "r")),
              "--encoder DIR")  # fmt: skip
    _one_line(cli("pretrain", "--data", str(data), "--from", str(encoder_dir), "--units", "999", "--out",
                  str(tmp_path / "c")), "--units 999", str(encoder_dir), "leave --units out")  # fmt: skip
    _one_line(cli("pretrain", "--data", str(data), "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")),
              "no such directory")  # fmt: skip
    assert not (tmp_path / "c").exists()
    _one_line(cli("train", "--recipe", "pretrained-vat", "--data", str(data), "--encoder", str(encoder_dir), "--out",
                  str(tmp_path / "r"), "--lr-schedule", "cosine"),
              "--lr-schedule cosine", "constant or slanted")  # fmt: skip


def test_pretraining_without_unlabeled_reviews_says_so_and_uses_train(tmp_path: Path) -> None:
    from reviewlens.pretraining import pretraining_texts

    dataset = Dataset(write_aclimdb(tmp_path, {"train": 10, "test": 2}, bad_utf8=False))
    logged: list[str] = []
    texts, train_count, unsup_count = pretraining_texts(dataset, False, logged.append)
    assert any("no unlabeled reviews" in line and "train split only" in line for line in logged)
    assert (train_count, unsup_count) == (len(dataset.ids("train")), 0) and len(texts) == train_count


def test_a_pretrained_classifier_learns_three_labels(three_labels: Path, encoder_dir: Path, tmp_path: Path) -> None:
    # An encoder is text, not labels: the one pretrained on the binary reviews serves the three-label data too.
    result = train("pretrained-finetune", three_labels, tmp_path / "run", epochs=1,
                   options={"encoder": encoder_dir, "max_length": 16})  # fmt: skip
    run = reviewlens.load(result.run_dir)
    assert run.labels == ["negative", "neutral", "positive"]
    samples = ["", "A wonderful, superb film.", "It was fine, I suppose."]
    probabilities = run.predict_proba(samples)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    plain = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    np.testing.assert_allclose(probabilities, np.asarray(plain(tf.constant([[t] for t in samples]))), atol=1e-6)


def test_vat_divergence_covers_every_label() -> None:
    from reviewlens.models.pretrained import _label_kl

    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], np.float32)
    q = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], np.float32)
    expected = [
        sum(a * np.log(a / b) for a, b in zip(pr, qr, strict=True) if a > 0) for pr, qr in zip(p, q, strict=True)
    ]
    np.testing.assert_allclose(np.asarray(_label_kl(p, q)), expected, rtol=1e-4)
    # one column is the probability of positive: the same as the two-column distribution it stands for
    binary = np.asarray(_label_kl(p[:1, 2:], q[:1, 2:]))
    np.testing.assert_allclose(binary, np.asarray(_label_kl(np.array([[0.5, 0.5]]), np.array([[0.8, 0.2]]))), rtol=1e-5)
