"""Imbalanced data: per-label metrics, class weights in every family's loss, the threshold chosen on validation."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics
from reviewlens.imbalance import ClassWeight, ThresholdRule
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE, write_jsonl
from tests.test_cli import run

# -- Metrics --------------------------------------------------------------------------------------------


def test_metrics_per_label_macro_f1_and_average_precision_by_hand() -> None:
    p = [0.9, 0.8, 0.7, 0.4, 0.3, 0.2]
    y = [1, 0, 1, 1, 0, 0]  # at 0.5: TP 2, FP 1, FN 1, TN 2
    scores = metrics(p, y)
    assert scores["confusion_matrix"] == [[2, 1], [1, 2]]
    for label in ("negative", "positive"):
        row = scores["per_label"][label]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 3))
    assert scores["macro_f1"] == pytest.approx(2 / 3)
    # Positives ranked 1st, 3rd and 4th: precision 1, 2/3, 3/4 at each; negatives (by 1 - p) 1st, 2nd and 5th.
    assert scores["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert scores["per_label"]["positive"]["average_precision"] == scores["average_precision"]
    assert scores["per_label"]["negative"]["average_precision"] == pytest.approx((1 + 1 + 3 / 5) / 3)


def test_metrics_of_a_run_that_never_says_the_minority_label() -> None:
    scores = metrics([0.9, 0.8, 0.7, 0.6], [1, 1, 1, 0])
    assert scores["accuracy"] == 0.75
    assert scores["per_label"]["negative"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "average_precision": 1.0}
    )
    assert scores["per_label"]["positive"]["f1"] == pytest.approx(6 / 7)
    assert scores["macro_f1"] == pytest.approx(3 / 7)  # what accuracy hides
    assert metrics([0.2, 0.7], [0, 0])["average_precision"] is None  # no positive review: undefined


def test_metrics_match_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), 1)  # ties
        scores = metrics(p, y, 0.4)
        predicted = (p >= 0.4).astype(int)
        precision, recall, f1, _ = sk.precision_recall_fscore_support(y, predicted, labels=[0, 1], zero_division=0)
        rows = [scores["per_label"][name] for name in ("negative", "positive")]
        assert [r["precision"] for r in rows] == pytest.approx(precision)
        assert [r["recall"] for r in rows] == pytest.approx(recall)
        assert [r["f1"] for r in rows] == pytest.approx(f1)
        # Macro over the run's labels, present in the split or not.
        macro = sk.f1_score(y, predicted, labels=[0, 1], average="macro", zero_division=0)
        assert scores["macro_f1"] == pytest.approx(macro)
        if y.any():
            assert scores["average_precision"] == pytest.approx(sk.average_precision_score(y, p))


# -- Parsing, and the thresholds chosen ---------------------------------------------------------------------


def test_class_weights_balanced_and_given() -> None:
    assert ClassWeight.parse("balanced").resolve({0: 10, 1: 90}) == pytest.approx((5.0, 100 / 180))
    given = ClassWeight.parse("negative=9,positive=1")
    assert given.resolve({0: 10, 1: 90}) == (9.0, 1.0) and given.spec == "negative=9,positive=1"
    assert ClassWeight.parse({"negative": 4}).resolve({}) == (4.0, 1.0)  # a label not given weighs 1
    with pytest.raises(ReviewlensError, match="no negative reviews"):
        ClassWeight.parse("balanced").resolve({1: 5})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "give balanced or LABEL=WEIGHT"),
        ("negative=x", "give balanced or LABEL=WEIGHT"),
        ("neutral=2", "the labels are negative and positive"),
        ("negative=0", "a weight must be a positive number"),
        ("negative=2,negative=3", "names negative twice"),
    ],
)
def test_bad_class_weights_say_what_to_do(spec: str, message: str) -> None:
    with pytest.raises(ReviewlensError, match=message):
        ClassWeight.parse(spec)


@pytest.mark.parametrize("spec", ["precision=2", "precision=0", "recall=0.9", "1.5", "best", "nan"])
def test_bad_thresholds_say_what_to_do(spec: str) -> None:
    with pytest.raises(ReviewlensError, match=f"--threshold {spec}"):
        ThresholdRule.parse(spec)


def test_threshold_rules_on_validation_predictions() -> None:
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.45, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    # Precision of "positive at or above t": 1 down to 0.8, 3/4 at 0.7, 4/5 at 0.6, 5/6 at 0.45, then falls.
    assert ThresholdRule.parse("precision=0.8").choose(p, y) == 0.45  # the lowest reaching it: the most recall
    assert ThresholdRule.parse("precision=1").choose(p, y) == 0.8
    # Macro-F1 peaks at 0.45 (5 of 5 positives found, one false positive): 0.9 against 0.8 at 0.5's 0.6.
    assert ThresholdRule.parse("best-f1").choose(p, y) == 0.45
    assert ThresholdRule.parse("0.3").choose(p, y) == 0.3
    with pytest.raises(ReviewlensError, match=r"at most 0\.5000"):
        ThresholdRule.parse("precision=0.9").choose(np.array([0.6, 0.6]), np.array([1, 0]))


# -- Class weights change each family's fit -------------------------------------------------------------------


def _ambiguous(rng: random.Random, label: int) -> str:
    """A review with one cue, its label's 80% of the time and the other label's otherwise: with 10% negative
    reviews, a negative cue still more often means positive, unless the loss weighs the classes."""
    own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(6, 12))]
    words.insert(rng.randrange(len(words) + 1), rng.choice(own if rng.random() < 0.8 else other))
    return " ".join(words)


def _imbalanced(n: int, negative_share: float, seed: int) -> tuple[list[str], np.ndarray]:
    rng = random.Random(seed)
    labels = [0 if i < round(n * negative_share) else 1 for i in range(n)]
    return [_ambiguous(rng, label) for label in labels], np.asarray(labels, np.float32)


@pytest.mark.parametrize("recipe", ["bow-unigram", "nbsvm-plus", "fasttext"])
def test_balanced_class_weights_raise_the_minority_recall(recipe: str) -> None:
    from reviewlens.families import Context, get_family
    from reviewlens.families.bow import Vectors
    from reviewlens.recipes import get_recipe
    from reviewlens.text import BagOfWords

    chosen = get_recipe(recipe)
    train_texts, y_train = _imbalanced(1000, 0.1, seed=1)
    val_texts, y_val = _imbalanced(1000, 0.5, seed=2)  # balanced, so recall of either label is measured well
    vectorizer = BagOfWords(**{**chosen.vectorizer, "max_tokens": 200})  # type: ignore[arg-type]
    x_train = vectorizer.fit_transform(train_texts)
    vectors = Vectors(x_train, y_train, vectorizer.transform(val_texts), y_val, vectorizer, dataset=None)  # type: ignore[arg-type]
    family = get_family(chosen.family)
    recall = {}
    for weights in (None, ClassWeight.parse("balanced").resolve({0: 100, 1: 900})):
        context = Context(epochs=10, seed=1, class_weight=weights)
        fitted = family.fit(chosen, vectors, context)  # type: ignore[attr-defined]
        recall[weights is not None] = metrics(fitted.val_probabilities, y_val)["per_label"]["negative"]["recall"]
    assert recall[False] < 0.1 and recall[True] > 0.4, recall  # 0 -> 0.45-0.66 measured


def test_sequence_and_character_recipes_weigh_their_loss(tmp_path: Path) -> None:
    from reviewlens.training import train

    data = _jsonl(tmp_path / "imbalanced.jsonl", 300, 100)  # 10% negative
    for recipe, epochs, options in (("sum-embedding", 2, None), ("char-cnn", 1, {"max_length": 32})):
        runs = {}
        for weight in (None, "negative=20"):
            out = tmp_path / f"{recipe}-{weight}"
            runs[weight] = train(recipe, data, out, epochs=epochs, class_weight=weight, options=options).metadata
            runs[weight].hyperparameters["loss"] = json.loads((out / "history.json").read_text())["loss"][0]
        weighted, plain = runs["negative=20"], runs[None]
        expected = {"rule": "negative=20,positive=1", "weights": {"negative": 20.0, "positive": 1.0}}
        assert weighted.hyperparameters["class_weight"] == expected
        # Each review's loss times its weight, over the batch: at the start about (0.1 * 20 + 0.9) times the plain
        # loss (2.9 measured for char-cnn; more for sum-embedding, whose plain loss falls fastest).
        assert weighted.hyperparameters["loss"] > 2 * plain.hyperparameters["loss"], recipe
        if recipe == "sum-embedding":  # it learns enough in two epochs for the decisions to move
            recall = [m.metrics["test"]["per_label"]["negative"]["recall"] for m in (plain, weighted)]
            assert recall[0] < recall[1], recall


def _jsonl(path: Path, train: int, test: int) -> Path:
    records = []
    for split, n, seed in (("train", train, 3), ("test", test, 4)):
        texts, labels = _imbalanced(n, 0.1, seed)
        records += [{"text": t, "label": int(y), "split": split} for t, y in zip(texts, labels, strict=True)]
    return write_jsonl(path, records)


# -- The threshold chosen on validation is the run's, everywhere ---------------------------------------------


def test_threshold_chosen_on_validation_is_stored_and_used(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from reviewlens import load
    from reviewlens.library import load_library
    from reviewlens.runs import read_predictions
    from reviewlens.serving import ServeConfig, create_app
    from reviewlens.training import train

    data = _jsonl(tmp_path / "imbalanced.jsonl", 1000, 400)
    out = tmp_path / "run"
    result = train("bow-unigram", data, out, epochs=2, class_weight="balanced", threshold="best-f1")
    metadata = json.loads((out / "metadata.json").read_text())
    kept = read_predictions(out)
    chosen = ThresholdRule.parse("best-f1").choose(kept["val_probabilities"], kept["val_labels"])
    assert metadata["threshold"] == chosen == result.metadata.threshold != 0.5
    assert metadata["hyperparameters"]["threshold"] == {"rule": "best-f1", "chosen_on": "validation", "value": chosen}
    assert metadata["hyperparameters"]["class_weight"]["weights"]["negative"] == pytest.approx(1000 / 200)
    test = metadata["metrics"]["test"]
    assert test == metrics(kept["test_probabilities"], kept["test_labels"], chosen) | {"examples": 400}

    # A review scored between 0.5 and the threshold: every consumer labels it by the run's threshold.
    run_ = load(out)
    texts = [record["text"] for record in map(json.loads, data.read_text().splitlines())]
    scores = run_.predict(texts)
    between = [t for t, s in zip(texts, scores, strict=True) if min(0.5, chosen) <= s < max(0.5, chosen)]
    assert between, "no review scored between 0.5 and the chosen threshold"
    expected = "positive" if chosen < 0.5 else "negative"
    assert run_.label(float(run_.predict(between[:1])[0])) == expected
    predicted = run("predict", str(out), between[0], "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["label"] == expected
    library = load_library([out])
    assert library.get("imdb_sentiment").predict({"text": between[0]}).label == expected
    with TestClient(create_app(ServeConfig(run_dirs=[str(out)], processes=0))) as client:
        served = client.post("/v1/predict", json={"text": between[0]}).json()
        assert served["label"] == expected
        assert client.get("/v1/models").json()[0]["threshold"] == chosen
    evaluated = run("evaluate", str(out), "--data", str(data), "--json")
    assert json.loads(evaluated.stdout)["test"]["confusion_matrix"] == test["confusion_matrix"]


# -- The command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--class-weight", "foo", "--class-weight foo: give balanced or LABEL=WEIGHT pairs"),
        ("--threshold", "precision=2", "--threshold precision=2: the target precision must be above 0 and at most 1"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(flag: str, value: str, says: str, tmp_path: Path) -> None:
    result = run("train", "--recipe", "bow-unigram", flag, value, "--out", str(tmp_path / "run"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and says in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_an_ensemble_refuses_class_weights(trained_run: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_run, tmp_path / "copy")
    result = run("train", "--recipe", "ensemble", "--members", f"{trained_run},{tmp_path / 'copy'}",
                 "--class-weight", "balanced", "--out", str(tmp_path / "ensemble"))  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "train its runs with --class-weight" in lines[0], lines
