"""Training writes a complete run atomically; every way of loading it predicts the same."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens
from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.models.sparse_mlp import SparseMLP
from reviewlens.predictors.keras_model import MODEL_FILE, load_keras_model
from reviewlens.training import train

from .conftest import TRAP


def test_run_directory_has_the_artifact_and_metadata(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {"model.keras", "metadata.json", "history.json", "curves.png", "vectorizer.json", "weights.npz"} <= names
    metadata = json.loads((trained_run / "metadata.json").read_text())
    assert metadata["recipe"] == "bow-bigram"
    assert 0.8 <= metadata["val_accuracy"] <= 1.0
    assert 0.8 <= metadata["test_accuracy"] <= 1.0
    assert metadata["metrics"]["test"]["examples"] == 200
    assert len(metadata["data"]["fingerprint"]) == 32
    assert metadata["data"]["undecodable"] == 1
    assert {"read_s", "vectorize_s", "fit_s", "evaluate_s", "total_s"} <= set(metadata["timings"])
    assert {"keras", "numpy", "python"} <= set(metadata["versions"])
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history["val_accuracy"]) == 4
    assert metadata["best_epoch"] == int(np.argmax(history["val_accuracy"])) + 1
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_both_runtimes_predict_the_same_on_raw_strings(trained_run: Path, session_aclimdb: Path) -> None:
    texts, _ = Dataset(session_aclimdb).read("test")
    texts += ["", "!!!", *TRAP, "A wonderful, superb film."]
    lean = reviewlens.load(trained_run)
    assert lean.runtime == "numpy"
    keras_model = reviewlens.load(trained_run, runtime="keras")
    np.testing.assert_allclose(lean.predict(texts), keras_model.predict(texts), atol=1e-5)
    # The plain Keras model loads too, in safe mode, once reviewlens' layers are registered.
    model = load_keras_model(trained_run / MODEL_FILE)
    direct = model(tf.constant([[t] for t in texts[:5]])).numpy().reshape(-1)
    np.testing.assert_allclose(direct, lean.predict(texts[:5]), atol=1e-5)
    assert lean.predict(["A wonderful superb brilliant film"])[0] > 0.5 > lean.predict(["awful boring dull"])[0]


def test_test_accuracy_in_metadata_is_what_the_saved_model_scores(trained_run: Path, session_aclimdb: Path) -> None:
    texts, labels = Dataset(session_aclimdb).read("test")
    predicted = reviewlens.load(trained_run, runtime="keras").predict(texts) > 0.5
    metadata = json.loads((trained_run / "metadata.json").read_text())
    assert metadata["test_accuracy"] == pytest.approx(float(np.mean(predicted == np.array(labels))))


def test_a_vocabulary_with_line_separator_characters_round_trips(tmp_path: Path) -> None:
    # Every review holds characters that str.splitlines() breaks on: a naive vocabulary file breaks.
    from .conftest import write_aclimdb

    root = write_aclimdb(tmp_path, {"train": 40, "test": 10})
    for path in root.glob("train/*/*.txt"):
        path.write_text(path.read_text(errors="replace") + " " + " ".join(TRAP), encoding="utf-8")
    run = train("tfidf-bigram", root, tmp_path / "run", epochs=1).run_dir
    model = keras.saving.load_model(run / MODEL_FILE)  # no error: "repeated term"
    texts = [" ".join(TRAP), "x\u0085y wonderful"]
    vocabulary = model.get_layer("text_vectorization").get_vocabulary()
    assert len(vocabulary) == len(set(vocabulary))
    assert not any(len(term.splitlines()) > 1 for term in vocabulary)
    np.testing.assert_allclose(
        model(tf.constant([[t] for t in texts])).numpy().reshape(-1), reviewlens.load(run).predict(texts), atol=1e-5
    )


def test_a_crash_while_writing_leaves_no_run_directory_and_resumes(
    session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("reviewlens.training.plot_curves", full)  # the disk fills up while the run is written
    with pytest.raises(
        ReviewlensError, match=r"run\.partial failed \(No space left on device\); free space"
    ) as full_disk:
        train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=1)
    assert "\n" not in str(full_disk.value)
    assert [p.name for p in tmp_path.iterdir()] == [".run.partial"]  # no run; its finished epoch is kept
    monkeypatch.undo()
    result = train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=1, resume=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and result.metadata.best_epoch == 1
    reviewlens.load(result.run_dir)  # complete: every file matches its checksum


def test_a_full_disk_while_checkpointing_keeps_the_last_whole_checkpoint(
    session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewlens import checkpoints

    saved = checkpoints.Checkpoint.save
    calls = 0

    def half_then_full(file: object) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    def fills_up(self: checkpoints.Checkpoint, path: Path) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second epoch's checkpoint meets a full disk halfway
            checkpoints._write_atomically(path, half_then_full)
        saved(self, path)

    monkeypatch.setattr(checkpoints.Checkpoint, "save", fills_up)
    with pytest.raises(ReviewlensError, match="No space left on device"):
        train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=3)
    staging = tmp_path / ".run.partial"
    assert [p.name for p in tmp_path.iterdir()] == [".run.partial"]
    assert not [p.name for p in staging.iterdir() if p.name.endswith(".tmp")]  # no half-written file
    monkeypatch.undo()
    previous = os.umask(0o022)
    try:
        result = train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=3, resume=True)
    finally:
        os.umask(previous)
    assert result.metadata.hyperparameters["resumed_after_epoch"] == 1
    # The run directory follows the umask, as any file the user creates: a colleague or a service can read it.
    assert result.run_dir.stat().st_mode & 0o777 == 0o755
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in result.run_dir.iterdir())


def test_an_existing_run_is_never_overwritten(trained_run: Path, session_aclimdb: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()}
    with pytest.raises(ReviewlensError, match="already exists"):
        train("bow-bigram", session_aclimdb, trained_run, epochs=1)
    assert {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()} == before


@pytest.mark.parametrize(("optimizer", "class_weight"), [("rmsprop", None), ("adam", None), ("rmsprop", (3.0, 0.5))])
def test_sparse_trainer_steps_exactly_like_keras(optimizer: str, class_weight: tuple[float, float] | None) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((16, 40)) < 0.2).astype(np.float32)
    y = rng.integers(0, 2, 16).astype(np.float32)
    keras.utils.set_random_seed(3)
    inputs = keras.Input((40,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    hidden = keras.layers.Dense(4, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": 0.01}}),
                  loss="binary_crossentropy")  # fmt: skip
    weights = model.get_weights()
    from scipy import sparse

    ours = SparseMLP(weights[0::2], weights[1::2], dropout=None, optimizer=optimizer, learning_rate=0.01)
    for _ in range(3):
        keras_loss = float(model.train_on_batch(x, y, class_weight=class_weight and dict(enumerate(class_weight))))
        weights = None if class_weight is None else np.asarray(class_weight, np.float32)[y.astype(int)]
        our_loss, _ = ours.train_batch(sparse.csr_matrix(x), y, weights)  # train --class-weight's weighting
        assert our_loss == pytest.approx(keras_loss, rel=1e-4)
    ours_weights = [w for pair in zip(ours.kernels, ours.biases, strict=True) for w in pair]
    for theirs, mine in zip(model.get_weights(), ours_weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_unknown_recipe_and_bad_epochs_are_user_errors(session_aclimdb: Path, tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match="unknown recipe 'bow-bigrams'; did you mean bow-bigram"):
        train("bow-bigrams", session_aclimdb, tmp_path / "a")
    with pytest.raises(ReviewlensError, match="--epochs 0"):
        train("bow-bigram", session_aclimdb, tmp_path / "b", epochs=0)
    with pytest.raises(ReviewlensError, match="--batch-size 0"):
        train("bow-bigram", session_aclimdb, tmp_path / "c", batch_size=0)
    with pytest.raises(ReviewlensError, match="--learning-rate nan"):
        train("bow-bigram", session_aclimdb, tmp_path / "d", learning_rate=float("nan"))


def test_batch_size_and_learning_rate_replace_the_recipes(session_aclimdb: Path, tmp_path: Path) -> None:
    run = train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=2, batch_size=7, learning_rate=3e-4)
    hyper = run.metadata.hyperparameters
    assert (hyper["batch_size"], hyper["learning_rate"]) == (7, 3e-4)
    default = train("bow-unigram", session_aclimdb, tmp_path / "default", epochs=2).metadata.hyperparameters
    assert (default["batch_size"], default["learning_rate"]) == (32, 1e-3)
    # They are what training used: a different batch size and step size give a different loss curve.
    curves = [json.loads((d / "history.json").read_text())["loss"] for d in (tmp_path / "run", tmp_path / "default")]
    assert curves[0] != curves[1]


def test_corrupt_or_incomplete_runs_fail_at_load_with_one_line(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "weights.npz").write_bytes(b"not weights")
    with pytest.raises(ReviewlensError, match=r"weights\.npz does not match its checksum"):
        reviewlens.load(broken)
    (broken / "metadata.json").write_text("{ nope")
    with pytest.raises(ReviewlensError, match=r"metadata\.json is corrupt"):
        reviewlens.load(broken)
    (broken / "metadata.json").unlink()
    with pytest.raises(ReviewlensError, match="not a complete run"):
        reviewlens.load(broken)
    with pytest.raises(ReviewlensError, match="is not a run directory"):
        reviewlens.load(tmp_path / "nothing-here")


def test_roc_auc_matches_the_rank_statistic_with_ties() -> None:
    from reviewlens.evaluation import roc_auc

    scores = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1])
    # 9 (positive, negative) pairs: the positive scores higher in 6, ties in 2 (half each): 7 / 9.
    assert roc_auc(scores, labels) == pytest.approx(7 / 9)
    assert roc_auc(scores, np.ones(6, int)) is None


def test_a_corrupt_checkpoint_is_one_line_on_resume(
    session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed while writing")

    monkeypatch.setattr("reviewlens.training.plot_curves", crash)
    with pytest.raises(RuntimeError):
        train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=1)
    monkeypatch.undo()
    checkpoint = tmp_path / ".run.partial" / "checkpoint.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])  # a disk that lost its end
    with pytest.raises(ReviewlensError, match=r"checkpoint\.npz is unreadable .*runs .* --clean") as refused:
        train("bow-unigram", session_aclimdb, tmp_path / "run", epochs=1, resume=True)
    assert "\n" not in str(refused.value)
