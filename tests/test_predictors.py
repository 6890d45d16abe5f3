"""The run contract: each predictor kind predicts what the trained model did, runs are checked, old runs load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reviewlens
from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import decide, metrics
from reviewlens.predictors import PREDICTORS
from reviewlens.runs import METADATA_FILE, PREDICTIONS_FILE, Run, file_digests, read_predictions
from reviewlens.training import train


@pytest.fixture(scope="module")
def runs(trained_run: Path, sequence_run: Path) -> list[Path]:
    return [trained_run, sequence_run]


@pytest.fixture(scope="module")
def ensembles(
    trained_run: Path, sequence_run: Path, session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """An ensemble of NumPy members (ensemble.v1 and ensemble-keras.v1) and one with a sequence member."""
    root = tmp_path_factory.mktemp("ensembles")
    twin = root / "twin"
    shutil.copytree(trained_run, twin)
    made = []
    for name, members in (("numpy", (trained_run, twin)), ("mixed", (trained_run, sequence_run))):
        train("ensemble", session_aclimdb, root / name, options={"members": members})
        made.append(root / name)
    return made


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_each_kind_loads_and_predicts_what_the_trained_model_did(
    kind: str, runs: list[Path], ensembles: list[Path], session_aclimdb: Path
) -> None:
    cls = PREDICTORS[kind]
    carrying = [run for run in runs + ensembles if kind in reviewlens.runs.read_metadata(run).predictors]
    assert carrying, f"no test run carries the predictor kind {kind}"
    texts, labels = Dataset(session_aclimdb).read("test")
    for run_dir in carrying:
        run = Run(run_dir, runtime=cls.runtime)
        assert run.predictor.kind == kind
        kept = read_predictions(run_dir)
        assert kept["test_labels"].tolist() == labels
        np.testing.assert_allclose(run.predict(texts), kept["test_probabilities"], rtol=0, atol=1e-5)
        proba = run.predict_proba(texts[:5])
        assert proba.shape == (5, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert run.predict([]).shape == (0,)


def test_every_run_names_its_predictors_labels_threshold_and_keeps_its_predictions(runs: list[Path]) -> None:
    bow, sequence = (reviewlens.runs.read_metadata(run) for run in runs)
    assert bow.format_version == sequence.format_version == 2
    assert bow.predictors == ["dense.v1", "keras.v1"] and sequence.predictors == ["keras.v1"]
    assert bow.family == "bow" and sequence.family == "embedding-sum"
    assert bow.labels == ["negative", "positive"] and bow.threshold == 0.5
    for run, metadata in zip(runs, (bow, sequence), strict=True):
        assert {"vectorizer.json", PREDICTIONS_FILE} <= set(metadata.files)
        kept = read_predictions(run)
        assert len(kept["val_probabilities"]) == metadata.data["validation"]
        val = metrics(kept["val_probabilities"], kept["val_labels"])
        assert val["accuracy"] == pytest.approx(metadata.val_accuracy)


def _rewrite(run_dir: Path, change: dict[str, object], drop: tuple[str, ...] = ()) -> None:
    """Edit a run's metadata (and remove files), keeping the checksums of what is left consistent."""
    metadata = json.loads((run_dir / METADATA_FILE).read_text())
    for name in drop:
        (run_dir / name).unlink()
    for key, value in change.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    metadata["files"] = {k: v for k, v in file_digests(run_dir).items() if k != METADATA_FILE}
    (run_dir / METADATA_FILE).write_text(json.dumps(metadata))


FORMAT_1 = dict.fromkeys(("format_version", "predictors", "labels", "threshold", "family"))


@pytest.mark.parametrize("which", ["bow", "sequence"])
def test_format_1_runs_keep_loading(which: str, runs: list[Path], tmp_path: Path) -> None:
    source = runs[0] if which == "bow" else runs[1]
    old = tmp_path / "old"
    shutil.copytree(source, old)
    # Format 1: no predictor names; sequence runs had no vectorizer.json; no run kept its predictions.
    _rewrite(old, FORMAT_1, drop=(PREDICTIONS_FILE,) + (("vectorizer.json",) if which == "sequence" else ()))
    texts = ["A wonderful, superb film.", "Dull and tedious.", "", "qwerty"]
    loaded = reviewlens.load(old)
    assert loaded.predictor.kind == ("dense.v1" if which == "bow" else "keras.v1")
    np.testing.assert_allclose(loaded.predict(texts), reviewlens.load(source).predict(texts), atol=1e-6)
    if which == "sequence":  # the vocabulary was read back from model.keras's layers
        assert loaded.predictor.preprocessor == reviewlens.load(source).predictor.preprocessor
    with pytest.raises(ReviewlensError, match="format 1"):
        read_predictions(old)


def test_the_threshold_is_the_runs_and_a_score_equal_to_it_is_positive(trained_run: Path, tmp_path: Path) -> None:
    assert decide(0.5) and not decide(0.4999) and decide(0.7, 0.7)
    assert metrics([0.5, 0.5], [1, 0])["confusion_matrix"] == [[0, 1], [0, 1]]  # 0.5 is positive everywhere
    strict = tmp_path / "strict"
    shutil.copytree(trained_run, strict)
    _rewrite(strict, {"threshold": 0.9})
    run = reviewlens.load(strict)
    texts = ["wonderful superb film", "dull boring plot", "the film"]
    scores = run.predict(texts)
    assert [run.label(s) for s in scores] == ["positive" if s >= 0.9 else "negative" for s in scores]
    assert run.label(0.9) == "positive" and run.label(0.89) == "negative"
    done = subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", "predict", str(strict), *texts, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert [r["label"] for r in json.loads(done.stdout)] == [run.label(s) for s in scores]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {"../../../etc/hostname": "0" * 64}}, "not a file of the run directory"),
        ({"predictors": ["nothing.v9"]}, "does not know"),
        ({"predictors": []}, "predictors"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_metadata_that_breaks_the_schema_is_one_clear_line(
    trained_run: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(trained_run, bad)
    metadata = json.loads((bad / METADATA_FILE).read_text()) | change
    (bad / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ReviewlensError, match=message) as error:
        reviewlens.load(bad)
    assert "\n" not in str(error.value)


def test_a_predictor_file_missing_from_the_checksums_is_refused(trained_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(trained_run, bad)
    metadata = json.loads((bad / METADATA_FILE).read_text())
    del metadata["files"]["weights.npz"]
    (bad / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ReviewlensError, match=r"no checksum for weights\.npz"):
        reviewlens.load(bad)


def test_asking_for_a_runtime_the_run_lacks_names_what_it_has(sequence_run: Path) -> None:
    with pytest.raises(ReviewlensError, match=r"no numpy predictor \(it has keras.v1\)"):
        reviewlens.load(sequence_run, runtime="numpy")


def test_sequence_runs_explain_by_occlusion(sequence_run: Path) -> None:
    run = reviewlens.load(sequence_run)
    explanation = run.explain("A wonderful superb film, a dull plot.", top=3)
    assert explanation.method == "occlusion" and len(explanation.terms) == 3
    assert explanation.score == pytest.approx(
        float(run.predict(["A wonderful superb film, a dull plot."])[0]), abs=1e-6
    )


def test_registries_are_lazy_bag_of_words_runs_never_import_tensorflow(trained_run: Path) -> None:
    script = f"""
import sys
import reviewlens
from reviewlens.families import FAMILIES
from reviewlens.predictors import PREDICTORS
from reviewlens.recipes import RECIPES
assert {{recipe.family for recipe in RECIPES.values()}} <= set(FAMILIES) and len(PREDICTORS) >= 2
run = reviewlens.load({str(trained_run)!r})
run.predict(["a wonderful film"]), run.explain("a wonderful film"), run.label(0.5)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
