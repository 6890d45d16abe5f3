"""Any labels a dataset holds: their names and order, aclImdb's ratings, and more than two labels end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.runs import read_predictions

from .conftest import CUES, write_jsonl
from .test_cli import run


def test_a_label_column_gives_its_names_in_order_and_binary_words_stay_binary(
    tmp_path: Path, three_labels: Path
) -> None:
    dataset = Dataset(three_labels)
    assert dataset.label_names == ("negative", "neutral", "positive")
    assert {split: sum(c.values()) for split, c in dataset.counts().items() if split != "unsup"} == {
        "train": 192, "validation": 48, "test": 60,
    }  # fmt: skip
    assert all(dataset.counts()["test"][label] == 20 for label in range(3))  # 20% of each label held out
    stars = [{"text": f"review {i}", "label": [2, 10, 4][i % 3]} for i in range(30)]
    assert Dataset(write_jsonl(tmp_path / "stars.jsonl", stars)).label_names == ("2", "4", "10")  # by value
    binary = [{"text": f"review {i}", "label": ["pos", "0"][i % 2]} for i in range(30)]
    assert Dataset(write_jsonl(tmp_path / "binary.jsonl", binary)).label_names == ("negative", "positive")


def test_labels_rating_labels_aclimdb_by_the_rating_in_each_file_name(aclimdb: Path, tmp_path: Path) -> None:
    dataset = Dataset(aclimdb, labels="rating")
    assert dataset.label_names == ("2", "8", "9")  # conftest names negatives ID_2, positives ID_8, one ID_9
    _, labels = dataset.read("test")
    assert [dataset.label_names[label] for label in labels].count("8") == 40
    info = run("data", "info", str(aclimdb), "--labels", "rating", "--json")
    assert info.returncode == 0, info.stderr
    reported = json.loads(info.stdout)
    assert reported["labels"] == ["2", "8", "9"]
    assert reported["reviews"]["test"] == {"2": 40, "8": 40, "9": 0}
    # One review rated 9, none in test: both said, neither stops anything.
    assert "label '9' has only 1 train and validation reviews" in info.stderr
    assert "label '9' has no test reviews" in info.stderr


@pytest.mark.parametrize(
    ("records", "labels", "message"),
    [
        ([{"text": f"r{i}", "label": "3"} for i in range(20)], "sentiment", "has the single label '3'"),
        (
            [{"text": f"r{i}", "label": "ab"[i % 2], "split": "train"} for i in range(20)]
            + [{"text": "r", "label": "c", "split": "test"}],
            "sentiment",
            "has no c reviews in its train split",
        ),
        ([{"text": f"r{i}", "label": i % 2} for i in range(20)], "rating", "--labels rating: .* carries no ratings"),
    ],
)
def test_labels_a_classifier_cannot_learn_are_one_line_exit_2(
    tmp_path: Path, records: list[dict[str, object]], labels: str, message: str
) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", records)
    with pytest.raises(ReviewlensError, match=message) as raised:
        Dataset(path, labels=labels).counts()  # type: ignore[arg-type]
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_label_mistake_is_one_line_and_exit_2_from_the_command_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [{"text": f"r{i}", "label": "3"} for i in range(20)])
    for command in (("data", "info", str(path)), ("train", "--recipe", "bow-bigram", "--data", str(path))):
        result = run(*command)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [f"error: {path} has the single label '3'; a classifier needs "
                                                      "at least two labels in its label column"]  # fmt: skip


HELD_OUT = {
    "negative": "a dull and tedious film",
    "neutral": "an okay film, ordinary",
    "positive": "a superb, moving film",
}


def test_more_than_two_labels_train_a_softmax_that_both_runtimes_agree_on(three_label_run: Path) -> None:
    from reviewlens.runs import load, read_metadata

    metadata = read_metadata(three_label_run)
    assert metadata.labels == ["negative", "neutral", "positive"]
    test = metadata.metrics["test"]
    assert test["accuracy"] >= 0.8 and test["macro_f1"] >= 0.8
    assert list(test["per_label"]) == metadata.labels and len(test["confusion_matrix"]) == 3
    numpy_run, keras_run = load(three_label_run, "numpy"), load(three_label_run, "keras")
    texts = list(HELD_OUT.values())
    probabilities = numpy_run.predict_proba(texts)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, keras_run.predict_proba(texts), atol=1e-5)  # model.keras: a softmax
    assert numpy_run.decide(probabilities) == list(HELD_OUT)


def test_a_character_model_learns_three_labels_and_loads_as_it_trained(three_labels: Path, tmp_path: Path) -> None:
    from reviewlens.runs import load, read_metadata
    from reviewlens.training import train

    out = tmp_path / "run"
    train("char-cnn", three_labels, out, epochs=3, options={"max_length": 200})
    metadata = read_metadata(out)
    assert metadata.labels == list(HELD_OUT) and len(metadata.metrics["test"]["confusion_matrix"]) == 3
    texts, _ = Dataset(three_labels).read("test")
    probabilities = load(out).predict_proba(texts)
    assert probabilities.shape == (len(texts), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, read_predictions(out)["test_probabilities"], atol=1e-5)
    assert metadata.metrics["test"]["accuracy"] > 0.5  # three labels: chance is a third


@pytest.fixture(scope="module", params=["nbsvm", "fasttext"])
def linear_three_label_run(
    request: pytest.FixtureRequest, three_labels: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / request.param
    train(request.param, three_labels, out, epochs=4)
    return out


def test_linear_and_fasttext_recipes_learn_three_labels_that_numpy_and_keras_agree_on(
    linear_three_label_run: Path, three_labels: Path
) -> None:
    from reviewlens.runs import load, read_metadata

    metadata = read_metadata(linear_three_label_run)
    assert metadata.labels == list(HELD_OUT) and metadata.predictors == ["dense.v1", "keras.v1"]
    assert metadata.metrics["test"]["macro_f1"] >= 0.8 and len(metadata.metrics["test"]["confusion_matrix"]) == 3
    numpy_run, keras_run = load(linear_three_label_run, "numpy"), load(linear_three_label_run, "keras")
    texts, _ = Dataset(three_labels).read("test")
    probabilities = numpy_run.predict_proba(texts)
    assert probabilities.shape == (len(texts), 3)
    np.testing.assert_allclose(probabilities, read_predictions(linear_three_label_run)["test_probabilities"], atol=1e-6)
    odd = ["", "!", *HELD_OUT.values()]
    np.testing.assert_allclose(keras_run.predict_proba([*texts[:20], *odd]),
                               numpy_run.predict_proba([*texts[:20], *odd]), atol=1e-5)  # fmt: skip
    assert numpy_run.decide(numpy_run.predict_proba(list(HELD_OUT.values()))) == list(HELD_OUT)


def test_an_ensemble_of_three_label_runs_averages_each_labels_probability(
    three_label_run: Path, linear_three_label_run: Path, three_labels: Path, tmp_path: Path
) -> None:
    from reviewlens.runs import load
    from reviewlens.training import train

    members = (three_label_run, linear_three_label_run)
    metadata = train("ensemble", three_labels, tmp_path / "ensemble", options={"members": members}).metadata
    assert metadata.labels == list(HELD_OUT) and "mean" in metadata.hyperparameters["combination"]
    kept = read_predictions(tmp_path / "ensemble")["test_probabilities"]
    mean = np.mean([read_predictions(m)["test_probabilities"] for m in members], axis=0)
    np.testing.assert_allclose(kept, mean, atol=1e-6)
    texts = list(HELD_OUT.values())
    ensemble = load(tmp_path / "ensemble")
    np.testing.assert_allclose(ensemble.predict_proba(texts),
                               np.mean([load(m).predict_proba(texts) for m in members], axis=0), atol=1e-6)  # fmt: skip
    assert ensemble.decide(ensemble.predict_proba(texts)) == list(HELD_OUT)


def test_an_ensemble_refuses_members_whose_labels_differ_in_one_line(
    three_label_run: Path, trained_run: Path, tmp_path: Path
) -> None:
    result = run("train", "--recipe", "ensemble", "--members", f"{three_label_run},{trained_run}",
                  "--out", str(tmp_path / "ensemble"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{trained_run} has the labels" in line and "cannot be combined" in line


@pytest.fixture(scope="module")
def calibrated_macro_f1_run(three_labels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nbsvm run of three labels, calibrated and with its epoch chosen by validation macro-F1 (one training for
    the two tests that read it)."""
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "calibrated"
    train("nbsvm", three_labels, out, epochs=4, calibrate=True, select="macro-f1")
    return out


def test_calibrate_fits_a_softmax_temperature_that_lowers_the_validation_loss(
    calibrated_macro_f1_run: Path, three_labels: Path
) -> None:
    from reviewlens.evaluation import metrics
    from reviewlens.runs import load, read_metadata

    calibrated = read_metadata(calibrated_macro_f1_run)
    temperature = calibrated.temperature
    assert temperature != 1.0 and calibrated.hyperparameters["calibration"]["fitted_on"] == "validation"
    run = load(calibrated_macro_f1_run)
    texts, labels = Dataset(three_labels).read("validation")
    scaled = run.predict_proba(texts)
    np.testing.assert_allclose(scaled, read_predictions(calibrated_macro_f1_run)["val_probabilities"], atol=1e-6)
    run.predictor.temperature = 1.0  # the model's own probabilities
    raw = run.predict_proba(texts)
    names = tuple(HELD_OUT)
    assert metrics(scaled, labels, names=names)["loss"] <= metrics(raw, labels, names=names)["loss"]  # type: ignore[operator]
    assert run.decide(scaled) == run.decide(raw)  # a temperature changes no answer
    expected = np.exp(np.log(raw) / temperature)
    np.testing.assert_allclose(scaled, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


def test_threshold_with_three_labels_is_one_line_exit_2(three_labels: Path, tmp_path: Path) -> None:
    result = run("train", "--recipe", "nbsvm", "--data", str(three_labels), "--threshold", "best-f1",
                 "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--threshold best-f1" in line and "two labels" in line and "has 3" in line


def test_predict_and_evaluate_report_every_label(three_label_run: Path, three_labels: Path) -> None:
    predicted = run("predict", str(three_label_run), *HELD_OUT.values(), "--json")
    assert predicted.returncode == 0, predicted.stderr
    answers = json.loads(predicted.stdout)
    assert [answer["label"] for answer in answers] == list(HELD_OUT)
    for answer in answers:
        assert list(answer["probabilities"]) == list(HELD_OUT)
        assert answer["score"] == answer["probabilities"][answer["label"]] == max(answer["probabilities"].values())
    shown = run("predict", str(three_label_run), HELD_OUT["neutral"]).stdout.strip()
    assert shown == f"{answers[1]['score']:.2%} neutral"
    evaluated = run("evaluate", str(three_label_run), "--data", str(three_labels), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    test = json.loads(evaluated.stdout)["test"]  # a file without a split column: every review scored
    assert test["examples"] == 300 and test["accuracy"] >= 0.8
    assert list(test["per_label"]) == list(HELD_OUT) and all(s["support"] == 100 for s in test["per_label"].values())
    assert [sum(row) for row in test["confusion_matrix"]] == [100, 100, 100]
    table = run("evaluate", str(three_label_run), "--data", str(three_labels)).stdout
    assert "neutral" in table and "macro-F1" in table


def test_serve_and_the_library_give_the_label_and_every_labels_probability(three_label_run: Path) -> None:
    from fastapi.testclient import TestClient

    from reviewlens.library import load_library
    from reviewlens.runs import load
    from reviewlens.serving import ServeConfig, create_app

    texts = list(HELD_OUT.values())
    expected = load(three_label_run).predict_proba(texts)
    with TestClient(create_app(ServeConfig(run_dirs=[str(three_label_run)]))) as client:
        (info,) = client.get("/v1/models").json()
        assert info["labels"] == list(HELD_OUT)
        batch = client.post("/v1/predict/batch", json={"texts": [*texts, " "]}).json()
        one = client.post("/v1/predict", json={"text": texts[1]}).json()
        explained = client.post("/v1/explain", json={"text": texts[2]}).json()
    assert [answer["label"] for answer in batch[:3]] == list(HELD_OUT) and batch[3]["probabilities"] is None
    for answer, row in zip(batch, expected, strict=False):
        assert list(answer["probabilities"]) == list(HELD_OUT)
        np.testing.assert_allclose(list(answer["probabilities"].values()), row, atol=1e-6)
    assert one["label"] == "neutral" and one["score"] == one["probabilities"]["neutral"]
    # Explained per label: each term's effect on the probability of the text's own label, exactly.
    assert explained["label"] == "positive" and explained["method"] == "exact"
    assert explained["score"] == pytest.approx(explained["probabilities"]["positive"], abs=1e-6)
    top = explained["terms"][0]
    assert top["term"] in {"superb", "moving"} and top["contribution"] > 0
    library = load_library([three_label_run])
    sentiments = library.get("imdb_sentiment").predict_batch([{"text": text} for text in texts])
    assert [s.label for s in sentiments] == list(HELD_OUT)
    np.testing.assert_allclose([list(s.probabilities.values()) for s in sentiments], expected, atol=1e-6)


def test_a_sequence_recipe_learns_three_labels_with_a_softmax(three_labels: Path, tmp_path: Path) -> None:
    from reviewlens.runs import load
    from reviewlens.training import train

    metadata = train("sum-embedding", three_labels, tmp_path / "run", epochs=8).metadata
    assert metadata.labels == list(HELD_OUT)
    assert metadata.metrics["test"]["macro_f1"] >= 0.9 and len(metadata.metrics["test"]["confusion_matrix"]) == 3
    run = load(tmp_path / "run")  # model.keras: token ids -> Embedding -> sum -> Dense(3, softmax)
    probabilities = run.predict_proba(list(HELD_OUT.values()))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert run.decide(probabilities) == list(HELD_OUT)


def test_explain_follows_the_label_a_review_gets(three_label_run: Path) -> None:
    result = run("explain", str(three_label_run), HELD_OUT["negative"], "--json")
    assert result.returncode == 0, result.stderr
    explained = json.loads(result.stdout)
    assert explained["label"] == "negative"
    cues = {t["term"]: t["contribution"] for t in explained["terms"] if t["term"] in CUES["negative"]}
    assert set(cues) == {"dull", "tedious"} and all(c > 0 for c in cues.values())  # they pushed it to negative


def test_score_writes_the_label_each_review_gets_and_its_probability(three_label_run: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reviewlens.runs import load
    from reviewlens.scoring import ScoreJob, score

    from .test_score import Recorded

    texts = list(HELD_OUT.values())
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    score(ScoreJob(three_label_run, tmp_path / "out"), [tmp_path / "in.parquet"], Recorded())  # type: ignore[arg-type]
    table = pq.read_table(tmp_path / "out" / "in.parquet")
    assert table.column("label").to_pylist() == list(HELD_OUT)
    expected = load(three_label_run).predict_proba(texts).max(axis=1)  # each text's own label's probability
    np.testing.assert_allclose(table.column("score").to_numpy(), expected, atol=1e-6)


def test_compare_reports_each_labels_f1_and_refuses_runs_of_other_labels(
    three_label_run: Path, three_labels: Path, trained_run: Path, tmp_path: Path
) -> None:
    from reviewlens.compare import compare

    from .test_tools import _copy_run

    runs = tmp_path / "runs"
    runs.mkdir()
    _copy_run(three_label_run, runs / "three")
    test = json.loads((three_label_run / "metadata.json").read_text())["metrics"]["test"]
    comparison = compare("bow-bigram", three_labels, runs, epochs=10)
    (row,) = comparison.rows
    assert row.reused and comparison.labels == tuple(HELD_OUT)
    assert row.macro_f1 == test["macro_f1"] and list(row.per_label_f1 or {}) == list(HELD_OUT)
    assert row.per_label_f1 == {label: test["per_label"][label]["f1"] for label in HELD_OUT}
    text = (runs / "comparison.md").read_text()
    assert "| recipe | macro-F1 | negative | neutral | positive |" in text
    f1 = " | ".join(f"{test['per_label'][label]['f1']:.3f}" for label in HELD_OUT)
    assert f"| bow-bigram | {test['macro_f1']:.3f} | {f1} |" in text

    # A two-label run that claims this data: compared beside the three-label one, it is refused in one line.
    fingerprint = json.loads((three_label_run / "metadata.json").read_text())["data"]["fingerprint"]
    _copy_run(trained_run, runs / "binary", recipe="bow-unigram", data__fingerprint=fingerprint,
              hyperparameters__epochs=10)  # fmt: skip
    result = run("compare", "--recipes", "bow-bigram,bow-unigram", "--data", str(three_labels), "--runs", str(runs),
                 "--epochs", "10")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {runs / 'binary'} holds the labels (negative, positive), {runs / 'three'} (negative, neutral, "
        "positive): runs of different labels cannot be compared; compare each set of labels on its own"
    )


def test_best_epoch_chooses_by_the_selected_figure_ties_to_the_lower_loss() -> None:
    from reviewlens.families import BestEpoch

    epochs = [
        {"val_accuracy": 0.80, "val_macro_f1": 0.50, "val_loss": 0.5},  # most accurate: a majority label
        {"val_accuracy": 0.75, "val_macro_f1": 0.70, "val_loss": 0.6},
        {"val_accuracy": 0.70, "val_macro_f1": 0.70, "val_loss": 0.4},  # as good a macro-F1, lower loss
    ]
    chosen = {}
    for select in ("accuracy", "macro-f1"):
        best: BestEpoch[int] = BestEpoch(select)
        for epoch, logs in enumerate(epochs, start=1):
            best.offer(epoch, logs, lambda epoch=epoch: epoch)  # type: ignore[misc]
        chosen[select] = (best.epoch, best.kept)
    assert chosen == {"accuracy": (1, 1), "macro-f1": (3, 3)}


def test_train_select_macro_f1_keeps_the_epoch_of_best_validation_macro_f1(calibrated_macro_f1_run: Path) -> None:
    from reviewlens.runs import read_metadata

    metadata = read_metadata(calibrated_macro_f1_run)
    assert metadata.hyperparameters["selection"] == "highest validation macro-F1, ties to lower validation loss"
    history = json.loads((calibrated_macro_f1_run / "history.json").read_text())
    f1, loss = history["val_macro_f1"], history["val_loss"]
    assert len(f1) == 4
    assert metadata.best_epoch == max(range(4), key=lambda i: (f1[i], -loss[i])) + 1
    # The kept validation predictions are the chosen epoch's (calibrated after: a temperature changes no answer).
    assert metadata.metrics["validation"]["macro_f1"] == pytest.approx(f1[metadata.best_epoch - 1], abs=1e-6)


def test_select_macro_f1_where_a_family_cannot_is_one_line_before_any_work(tmp_path: Path) -> None:
    result = run("train", "--recipe", "sum-embedding", "--select", "macro-f1", "--data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --select macro-f1: recipe 'sum-embedding' (embedding-sum family) chooses its epoch by validation "
        "accuracy; leave --select out or choose a recipe of the bow, fasttext, linear families"
    ]
