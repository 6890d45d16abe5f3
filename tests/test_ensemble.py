"""Ensembles: ``train --recipe ensemble --members RUN,RUN`` makes a run that every consumer takes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.special import expit

import reviewlens
from reviewlens.calibration import logits
from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.explain import MAX_OCCLUDED_WORDS
from reviewlens.library import load_library
from reviewlens.runs import read_metadata, read_predictions
from reviewlens.serving import ServeConfig, create_app
from reviewlens.training import train

from .memory import MB, cli_peak
from .test_cli import run as cli

TEXTS = ["A wonderful, superb film.", "Dull and tedious.", "", "wonderful", "the the the"]


@pytest.fixture(scope="module")
def linear_run(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("members") / "nbsvm"
    train("nbsvm", session_aclimdb, out)
    return out


@pytest.fixture(scope="module")
def ensemble_run(trained_run: Path, linear_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nbsvm + bow-bigram, trained from the command line without --data (the members' data is used)."""
    out = tmp_path_factory.mktemp("ensembles") / "ensemble"
    result = cli("train", "--recipe", "ensemble", "--members", f"{linear_run},{trained_run}", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_ensemble_combines_its_members_with_the_weights_fitted_on_validation(
    ensemble_run: Path, linear_run: Path, trained_run: Path, session_aclimdb: Path
) -> None:
    metadata = read_metadata(ensemble_run)
    assert metadata.family == "ensemble" and metadata.predictors == ["ensemble.v1", "ensemble-keras.v1"]
    combination = json.loads((ensemble_run / "ensemble.json").read_text())
    weights, bias = np.array(combination["weights"]), combination["bias"]
    members = [reviewlens.load(path).predict(TEXTS) for path in (linear_run, trained_run)]
    expected = expit(np.stack([logits(p) for p in members], axis=1) @ weights + bias)
    ensemble = reviewlens.load(ensemble_run)
    assert ensemble.runtime == "numpy"
    np.testing.assert_allclose(ensemble.predict(TEXTS), expected, atol=1e-5)
    np.testing.assert_allclose(reviewlens.load(ensemble_run, runtime="keras").predict(TEXTS), expected, atol=1e-5)
    # The test figure is the test split scored once, by the model the run directory holds.
    texts, labels = Dataset(session_aclimdb).read("test")
    scores = ensemble.predict(texts)
    np.testing.assert_allclose(read_predictions(ensemble_run)["test_probabilities"], scores, atol=1e-5)
    assert metadata.test_accuracy == pytest.approx(float(np.mean((scores >= 0.5) == np.array(labels))))
    # Its validation figures are out of fold: weights never scored the reviews they were fitted on.
    assert "out-of-fold" in metadata.hyperparameters["validation_metrics"]


def test_ensemble_is_a_run_like_any_other(ensemble_run: Path) -> None:
    ensemble = reviewlens.load(ensemble_run)
    expected = ensemble.predict(TEXTS)
    library = load_library([ensemble_run])
    sentiment = library.get("imdb_sentiment")
    for text, score in zip(TEXTS, expected, strict=True):
        assert sentiment.predict({"text": text}).score == pytest.approx(float(score), abs=1e-6)
    explanation = ensemble.explain("A wonderful film, not dull at all.")
    assert explanation.method == "occlusion" and {term.term for term in explanation.terms} >= {"wonderful", "dull"}
    with TestClient(create_app(ServeConfig(run_dirs=[str(ensemble_run)]))) as client:
        body = client.post("/v1/predict/batch", json={"texts": TEXTS}).json()
        scored = [i for i, text in enumerate(TEXTS) if text.strip()]  # a blank text is not scored over HTTP
        np.testing.assert_allclose([body[i]["score"] for i in scored], expected[scored], atol=1e-6)
        assert client.post("/v1/explain", json={"text": "wonderful"}).status_code == 200
    for command in (["predict", str(ensemble_run), "A superb film."], ["evaluate", str(ensemble_run), "--json"]):
        assert cli(*command).returncode == 0


def test_ensemble_of_a_sequence_run_loads_its_members_with_keras(
    sequence_run: Path, linear_run: Path, tmp_path: Path
) -> None:
    result = cli(
        "train", "--recipe", "ensemble", "--members", f"{sequence_run},{linear_run}", "--out", str(tmp_path / "e")
    )
    assert result.returncode == 0, result.stderr
    assert read_metadata(tmp_path / "e").predictors == ["ensemble-keras.v1"]
    assert reviewlens.load(tmp_path / "e").predict(TEXTS).shape == (len(TEXTS),)


def test_an_altered_member_is_refused(ensemble_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ensemble_run, copy)
    member = next((copy / "members").iterdir())
    (member / "history.json").write_text("{}")
    with pytest.raises(ReviewlensError, match="checksum"):
        reviewlens.load(copy)
    metadata = json.loads((member / "metadata.json").read_text())
    metadata["threshold"] = 0.1
    (member / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ReviewlensError, match="missing or altered"):
        reviewlens.load(copy)


@pytest.mark.parametrize(
    "case", ["missing", "one", "twice", "other data", "other labels", "no members", "ensemble member"]
)
def test_bad_members_get_one_line_and_exit_2(
    case: str, ensemble_run: Path, linear_run: Path, trained_run: Path, aclimdb: Path, tmp_path: Path
) -> None:
    relabelled = tmp_path / "relabelled"
    shutil.copytree(linear_run, relabelled)
    metadata = json.loads((relabelled / "metadata.json").read_text())
    (relabelled / "metadata.json").write_text(json.dumps({**metadata, "labels": ["bad", "good"]}))
    members = {
        "missing": f"{linear_run},{tmp_path / 'nowhere'}",
        "other labels": f"{trained_run},{relabelled}",
        "one": str(linear_run),
        "twice": f"{linear_run},{linear_run}",
        "other data": f"{linear_run},{trained_run}",
        "ensemble member": f"{linear_run},{ensemble_run}",
    }
    args = ["train", "--recipe", "ensemble", "--out", str(tmp_path / "out")]
    if case != "no members":
        args += ["--members", members[case]]
    if case == "other data":
        args += ["--data", str(aclimdb)]
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if case == "other data":  # found once the data is read, after the line saying which data
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "out").exists()


def test_members_may_be_given_as_strings_from_python(
    linear_run: Path, trained_run: Path, session_aclimdb: Path, tmp_path: Path
) -> None:
    result = train(
        "ensemble", session_aclimdb, tmp_path / "e", options={"members": [str(linear_run), str(trained_run)]}
    )
    assert [m["recipe"] for m in result.metadata.hyperparameters["members"]] == ["nbsvm", "bow-bigram"]


def test_explaining_a_long_text_holds_a_small_fixed_memory_and_says_which_words(ensemble_run: Path) -> None:
    # 100,000 characters of 11,000 distinct words: one copy of the text per word held 1.1 GB of strings.
    text = " ".join(f"word{i}" for i in range(11_000))
    result, peak = cli_peak("explain", str(ensemble_run), text, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["words"], answer["words_considered"]) == (11_000, MAX_OCCLUDED_WORDS)
    assert peak < 300 * MB, f"{peak / MB:.0f} MB"
    shown = cli("explain", str(ensemble_run), text)
    assert f"the first {MAX_OCCLUDED_WORDS} of its 11,000 distinct words" in shown.stderr


def test_a_member_that_cannot_predict_is_refused_when_built(
    linear_run: Path, trained_run: Path, tmp_path: Path
) -> None:
    import hashlib

    member = tmp_path / "nan"
    shutil.copytree(linear_run, member)
    with np.load(member / "weights.npz") as arrays:
        kept = {name: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for name, v in arrays.items()}
    np.savez(member / "weights.npz", **kept)
    metadata = json.loads((member / "metadata.json").read_text())
    metadata["files"]["weights.npz"] = hashlib.sha256((member / "weights.npz").read_bytes()).hexdigest()
    (member / "metadata.json").write_text(json.dumps(metadata))  # checksums that match: only predicting tells
    out = tmp_path / "ensemble"
    result = cli("train", "--recipe", "ensemble", "--members", f"{member},{trained_run}", "--out", str(out))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {member}") and "Traceback" not in result.stderr, result.stderr
    assert not out.exists()
