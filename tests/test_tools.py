"""The tools around the models: explain, evaluate on labelled files with calibration, and compare."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reviewlens.errors import ReviewlensError

from .conftest import make_review, write_csv, write_jsonl
from .test_cli import run

PNG = b"\x89PNG\r\n\x1a\n"


def one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0]


def labelled_rows(n: int = 24, seed: int = 3) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(make_review(rng, i % 2).replace("\t", " "), i % 2) for i in range(n)]


# --- reading labelled files -------------------------------------------------------------------------------------


def test_read_labelled_reads_every_row_of_a_headerless_tsv(tmp_path: Path) -> None:
    from reviewlens.data import labelled_file, read_labelled

    path = tmp_path / "elsewhere.tsv"
    path.write_text("A superb film\t1\n\nawful\tand dull\tnegative\nFine, I suppose\tPOSITIVE\r\nmeh\t0\n")
    assert labelled_file(path)
    texts, labels = read_labelled(path)
    assert texts == ["A superb film", "awful\tand dull", "Fine, I suppose", "meh"]  # the label follows the last tab
    assert labels == [1, 0, 1, 0]


def test_read_labelled_reads_csv_with_either_header_and_jsonl(tmp_path: Path) -> None:
    from reviewlens.data import labelled_file, read_labelled

    imdb = write_csv(tmp_path / "imdb.csv", [("Great, really", "positive"), ("Bad", "negative")])
    plain = write_csv(tmp_path / "plain.csv", [("Great", "1"), ("Bad", "0")], header=("text", "label"))
    lines = write_jsonl(tmp_path / "r.jsonl", [{"text": "Great", "label": 1}, {"text": "Bad", "label": "negative"}])
    for path in (imdb, plain, lines):
        assert labelled_file(path)
        texts, labels = read_labelled(path)
        assert labels == [1, 0] and texts[1] == "Bad"
    assert read_labelled(imdb)[0][0] == "Great, really"


def test_only_files_without_a_split_are_scored_whole(tmp_path: Path) -> None:
    from reviewlens.data import labelled_file

    split_csv = write_csv(tmp_path / "s.csv", [("Good", "positive", "test")], header=("review", "sentiment", "split"))
    split_jsonl = write_jsonl(
        tmp_path / "s.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0, "split": "test"}]
    )
    empty_split = write_jsonl(tmp_path / "e.jsonl", [{"text": "a", "label": 1, "split": ""}])
    assert not labelled_file(split_csv) and not labelled_file(split_jsonl)
    assert labelled_file(empty_split)
    assert not labelled_file(tmp_path) and not labelled_file(tmp_path / "missing.tsv")


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("bad.tsv", "good\t1\nfine\t1\nso-so\t2\n", 3),
        ("bad.csv", "text,label\ngood,1\nso-so,maybe\n", 3),
        ("bad.jsonl", '{"text": "good", "label": 1}\n\n{"text": "x", "label": "meh"}\n', 3),
        ("notab.tsv", "good\t1\nno tab here\n", 2),
    ],
)
def test_a_bad_row_names_the_file_and_line(tmp_path: Path, name: str, content: str, line: int) -> None:
    from reviewlens.data import read_labelled

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReviewlensError, match=re.escape(f"{path} line {line}")):
        read_labelled(path)


def test_unknown_csv_header_and_empty_files_are_refused(tmp_path: Path) -> None:
    from reviewlens.data import read_labelled

    odd = write_csv(tmp_path / "odd.csv", [("good", "1")], header=("body", "stars"))
    with pytest.raises(ReviewlensError, match="review,sentiment or text,label"):
        read_labelled(odd)
    (tmp_path / "empty.tsv").write_text("\n\n")
    with pytest.raises(ReviewlensError, match="holds no reviews"):
        read_labelled(tmp_path / "empty.tsv")


# --- calibration ------------------------------------------------------------------------------------------------


def test_expected_calibration_error_by_hand() -> None:
    from reviewlens.evaluation import calibration_bins, expected_calibration_error

    # Four reviews said positive at 0.95 (3 right), two said negative at 1 - 0.25 = 0.75 (1 right).
    p = [0.95, 0.95, 0.95, 0.95, 0.25, 0.25]
    y = [1, 1, 1, 0, 0, 1]
    assert expected_calibration_error(p, y) == pytest.approx(4 / 6 * 0.20 + 2 / 6 * 0.25)
    table = calibration_bins(p, y)
    assert table["counts"].tolist() == [0] * 11 + [2, 0, 0, 4]  # 0.75 -> bin 11, 0.95 -> bin 14 of 15
    assert table["accuracy"][14] == pytest.approx(0.75) and table["confidence"][11] == pytest.approx(0.75)
    # With one bin it is |accuracy - mean confidence| over everything.
    assert expected_calibration_error(p, y, bins=1) == pytest.approx(abs(4 / 6 - (0.95 * 4 + 0.75 * 2) / 6))
    # The threshold decides the predicted label: at 0.2 every review is said positive.
    assert expected_calibration_error(p, y, bins=1, threshold=0.2) == pytest.approx(abs(4 / 6 - 4.3 / 6))
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [1, 0])


def test_calibrated_scores_have_a_small_error_and_overconfident_ones_a_large_one() -> None:
    from reviewlens.evaluation import expected_calibration_error

    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=p.size) < p).astype(int)  # positive exactly as often as p says
    assert expected_calibration_error(p, y) < 0.01
    right = rng.uniform(size=p.size) < 0.7  # says 99% and is right 70% of the time
    labels = rng.integers(0, 2, size=p.size)
    overconfident = np.where(right == labels.astype(bool), 0.99, 0.01)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.29, abs=0.01)


def test_plot_reliability_writes_a_png(tmp_path: Path) -> None:
    from reviewlens.evaluation import plot_reliability

    path = plot_reliability([0.9, 0.8, 0.3, 0.1, 0.6], [1, 1, 0, 1, 0], tmp_path / "rel.png", title="tiny")
    assert path.read_bytes().startswith(PNG)


# --- evaluate ---------------------------------------------------------------------------------------------------


def test_evaluate_scores_every_row_of_a_tsv_and_draws_the_reliability_diagram(
    trained_run: Path, tmp_path: Path
) -> None:
    import reviewlens
    from reviewlens.evaluation import expected_calibration_error

    rows = labelled_rows(24)
    path = tmp_path / "elsewhere.tsv"
    path.write_text("".join(f"{text}\t{'positive' if label else '0'}\n" for text, label in rows), encoding="utf-8")
    plot = tmp_path / "reliability.png"
    result = run("evaluate", str(trained_run), "--data", str(path), "--plot", str(plot), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["split"] == "all" and report["data"] == str(path) and report["plot"] == str(plot)
    scores = report["test"]
    assert scores["examples"] == 24
    probabilities = reviewlens.load(trained_run).predict([text for text, _ in rows])
    labels = [label for _, label in rows]
    assert scores["accuracy"] == pytest.approx(np.mean((probabilities >= 0.5) == np.asarray(labels)))
    assert scores["ece"] == pytest.approx(expected_calibration_error(probabilities, labels), abs=1e-6)
    assert scores["ece_bins"] == 15
    assert plot.read_bytes().startswith(PNG)
    human = run("evaluate", str(trained_run), "--data", str(path))
    assert "(all rows)" in human.stdout and "ECE, 15 bins" in human.stdout


def test_evaluate_keeps_scoring_the_test_split_of_a_file_with_a_split_column(trained_run: Path, tmp_path: Path) -> None:
    rows = labelled_rows(40)
    records = [(text, "positive" if label else "negative", "test" if i % 5 == 0 else "train")
               for i, (text, label) in enumerate(rows)]  # fmt: skip
    path = write_csv(tmp_path / "split.csv", records, header=("review", "sentiment", "split"))
    result = run("evaluate", str(trained_run), "--data", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["split"] == "test" and report["test"]["examples"] == 8
    assert 0.0 <= report["test"]["ece"] <= 1.0 and "accuracy" in report["test"]


def test_evaluate_with_a_bad_label_or_plot_folder_is_one_line(trained_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("superb\t1\nmeh\tmaybe\n")
    one_line_error(run("evaluate", str(trained_run), "--data", str(path)), f"{path} line 2", "maybe")
    good = tmp_path / "good.tsv"
    good.write_text("superb\t1\n")
    missing = tmp_path / "nowhere" / "r.png"
    one_line_error(run("evaluate", str(trained_run), "--data", str(good), "--plot", str(missing)), str(missing.parent))


# --- explain ----------------------------------------------------------------------------------------------------

REVIEW = "A wonderful and superb film, but the plot was dull."


def test_explain_json_gives_exact_contributions_for_a_bag_of_words_run(trained_run: Path) -> None:
    import reviewlens

    result = run("explain", str(trained_run), REVIEW, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"text", "label", "score", "method", "terms", "words", "words_considered"}
    assert answer["text"] == REVIEW and answer["method"] == "exact"
    assert answer["words"] is None and answer["words_considered"] is None  # exact: no words are occluded
    model = reviewlens.load(trained_run)
    score = float(model.predict([REVIEW])[0])
    assert answer["score"] == pytest.approx(score, abs=1e-6) and answer["label"] == model.label(score)
    contributions = {t["term"]: t["contribution"] for t in answer["terms"]}
    assert contributions["wonderful"] > 0 and contributions["superb"] > 0 and contributions["dull"] < 0
    sizes = [abs(t["contribution"]) for t in answer["terms"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) <= 10
    top = json.loads(run("explain", str(trained_run), REVIEW, "--top", "2", "--json").stdout)
    assert [t["term"] for t in top["terms"]] == [t["term"] for t in answer["terms"][:2]]


def test_explain_prints_the_score_line_then_coloured_terms(trained_run: Path) -> None:
    result = run("explain", str(trained_run), REVIEW, "--top", "20", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]
    assert re.fullmatch(r"\d{1,3}\.\d\d% (positive|negative)", plain[0])
    terms = {line.split()[1]: (line, float(line.split()[0])) for line in plain[1:] if len(line.split()) == 2}
    assert terms["wonderful"][1] > 0 and terms["dull"][1] < 0
    coloured = dict(zip(plain[1:], lines[1:], strict=True))
    assert "\x1b[32m" in coloured[terms["wonderful"][0]]  # green: pushed towards positive
    assert "\x1b[31m" in coloured[terms["dull"][0]]  # red: pushed towards negative


def test_explain_uses_occlusion_for_a_sequence_run(sequence_run: Path) -> None:
    result = run("explain", str(sequence_run), REVIEW, "--top", "3", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["method"] == "occlusion" and len(answer["terms"]) == 3
    assert all(t["term"] in REVIEW.lower() for t in answer["terms"])  # occlusion names words of the text


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_explain_refuses_an_empty_text_in_one_line(trained_run: Path, text: str) -> None:
    one_line_error(run("explain", str(trained_run), text), "empty")


# --- compare ----------------------------------------------------------------------------------------------------


def _copy_run(source: Path, destination: Path, **changes: object) -> Path:
    """A copy of a run with metadata fields replaced (metadata.json is not among the checksummed files)."""
    shutil.copytree(source, destination)
    metadata = json.loads((destination / "metadata.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            metadata[section][field] = value
        else:
            metadata[key] = value
    (destination / "metadata.json").write_text(json.dumps(metadata))
    return destination


def test_compare_reuses_the_newest_matching_run_trains_the_rest_and_writes_the_report(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path
) -> None:
    from reviewlens.compare import compare

    runs = tmp_path / "runs"
    runs.mkdir()
    created = json.loads((trained_run / "metadata.json").read_text())["created"]
    older = _copy_run(trained_run, runs / "older", created="2000-01-01T00:00:00+00:00")
    newest = _copy_run(trained_run, runs / "newest")
    _copy_run(trained_run, runs / "other-data", created="2999-01-01T00:00:00+00:00", data__fingerprint="0" * 32)
    _copy_run(trained_run, runs / "other-epochs", created="2999-01-01T00:00:00+00:00", hyperparameters__epochs=2)
    _copy_run(trained_run, runs / ".hidden", created="2999-01-01T00:00:00+00:00")
    corrupt = _copy_run(trained_run, runs / "corrupt", created="2999-01-01T00:00:00+00:00")
    (corrupt / "vectorizer.json").write_text("{}")
    assert created and older.exists()

    logged: list[str] = []
    first = compare("bow-bigram, bow-unigram", session_aclimdb, runs, epochs=4, log=logged.append)
    bigram, unigram = first.rows
    damaged = [line for line in logged if line.startswith("passed over a damaged run")]
    assert len(damaged) == 1 and f"{corrupt}/vectorizer.json" in damaged[0]  # said, once: not passed over silently
    assert (bigram.recipe, bigram.reused, bigram.run_dir) == ("bow-bigram", True, str(newest))
    metadata = json.loads((newest / "metadata.json").read_text())
    assert bigram.test_accuracy == metadata["test_accuracy"] and bigram.val_accuracy == metadata["val_accuracy"]
    assert bigram.train_seconds == metadata["timings"]["total_s"]
    assert bigram.size_mb == pytest.approx(sum(f.stat().st_size for f in newest.iterdir()) / 1e6)
    assert bigram.reviews_per_second > 0
    assert unigram.recipe == "bow-unigram" and not unigram.reused
    trained = Path(unigram.run_dir)
    assert (
        trained.parent == runs and json.loads((trained / "metadata.json").read_text())["hyperparameters"]["epochs"] == 4
    )

    text = (runs / "comparison.md").read_text()
    assert (
        f"reviewlens compare --recipes bow-bigram,bow-unigram --data {session_aclimdb} --runs {runs} --epochs 4" in text
    )
    assert "| recipe | validation accuracy | test accuracy | training s | reviews/s | size MB | run |" in text
    assert f"| bow-bigram | {metadata['val_accuracy']:.2%} | {metadata['test_accuracy']:.2%} |" in text
    assert first.fingerprint == metadata["data"]["fingerprint"]
    assert (runs / "comparison.png").read_bytes().startswith(PNG)
    assert not list(runs.glob(".comparison*"))  # nothing half-written left behind

    before = sorted(p.name for p in runs.iterdir())
    again = compare(["bow-unigram", "bow-bigram"], session_aclimdb, runs, epochs=4)
    assert [(r.recipe, r.reused, r.run_dir) for r in again.rows] == [
        ("bow-unigram", True, str(trained)), ("bow-bigram", True, str(newest)),
    ]  # fmt: skip
    assert sorted(p.name for p in runs.iterdir()) == before  # nothing trained the second time


def test_compare_cli_prints_a_table_or_json(trained_run: Path, session_aclimdb: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _copy_run(trained_run, runs / "bigram")
    args = ["compare", "--recipes", "bow-bigram", "--data", str(session_aclimdb), "--runs", str(runs), "--epochs", "4"]
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["markdown"] == str(runs / "comparison.md") and report["chart"] == str(runs / "comparison.png")
    (row,) = report["recipes"]
    assert set(row) == {"recipe", "run_dir", "reused", "val_accuracy", "test_accuracy", "train_seconds",
                        "reviews_per_second", "size_mb", "macro_f1", "per_label_f1"}  # fmt: skip
    assert report["labels"] == ["negative", "positive"]
    assert row["macro_f1"] == json.loads((runs / "bigram" / "metadata.json").read_text())["metrics"]["test"]["macro_f1"]
    assert row["reused"] is True and row["run_dir"] == str(runs / "bigram")
    human = run(*args)
    assert human.returncode == 0, human.stderr
    assert "test acc" in human.stdout and "(reused)" in human.stdout and f"{row['test_accuracy']:.2%}" in human.stdout
    assert "reusing" in human.stderr


def test_compare_names_an_unknown_recipe_in_one_line_before_any_work(tmp_path: Path) -> None:
    one_line_error(
        run("compare", "--recipes", "bow-bigram,bow-bigramm", "--runs", str(tmp_path / "runs")), "bow-bigramm"
    )
    assert not (tmp_path / "runs").exists()
