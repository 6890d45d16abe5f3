"""The command line as a user runs it: output formats, --json purity, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_csv


def run(
    *args: str, stdin: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    environment.pop("REVIEWLENS_DATA", None)
    return subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=300,
    )


def test_recipes_lists_the_books_recipes_with_figures() -> None:
    result = run("recipes", "--json")
    assert result.returncode == 0
    recipes = {r["name"]: r for r in json.loads(result.stdout)}
    assert recipes["bow-bigram"]["expected_accuracy"] == 0.897
    assert {"bow-unigram", "bow-bigram", "tfidf-bigram", "dense-10k"} <= set(recipes)
    # Each recipe says which per-run options its family takes (the family's typed options).
    assert recipes["bow-bigram"]["options"] == []
    assert {"max_length", "truncate", "stream", "bucket"} <= set(recipes["conv1d"]["options"])
    table = run("recipes").stdout
    assert "nbsvm-plus (default)" in table and "bow-bigram" in table and "89.7%" in table
    assert "bilstm-onehot (slow)" in table


def test_recipe_names_are_never_cut_in_a_pipe() -> None:
    # A pipe has no terminal width: rich falls back to 80 columns, and the names must still come out whole.
    environment = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    table = subprocess.run(
        [sys.executable, "-m", "reviewlens", "recipes"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    ).stdout
    assert max(map(len, table.splitlines())) <= 80
    first_cells = {line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")}
    names = {recipe["name"] for recipe in json.loads(run("recipes", "--json").stdout)}
    assert names <= {cell.split(" (")[0] for cell in first_cells}
    assert "transformer-posemb" in names


def test_train_json_prints_only_the_metadata_on_stdout(session_aclimdb: Path, tmp_path: Path) -> None:
    result = run("train", "--recipe", "bow-unigram", "--data", str(session_aclimdb), "--epochs", "2",
                 "--out", str(tmp_path / "run"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metadata = json.loads(result.stdout)
    assert metadata["recipe"] == "bow-unigram"
    assert metadata["hyperparameters"]["epochs"] == 2
    assert json.loads((tmp_path / "run" / "metadata.json").read_text()) == metadata
    assert "epoch 2/2" in result.stderr  # the progress went to stderr


def test_predict_prints_the_books_phrase(trained_run: Path) -> None:
    result = run("predict", str(trained_run), "A wonderful, superb film.", "Awful and boring.")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\d{1,3}\.\d\d% positive", lines[0])
    assert re.fullmatch(r"\d{1,3}\.\d\d% negative", lines[1])


def test_predict_reads_one_review_per_line_from_stdin_as_json(trained_run: Path) -> None:
    result = run("predict", str(trained_run), "--file", "-", "--json", stdin="superb brilliant\n\nawful dull\n")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["text"] for a in answers] == ["superb brilliant", "", "awful dull"]
    assert answers[0]["label"] == "positive" and answers[2]["label"] == "negative"
    assert all(0.0 <= a["score"] <= 1.0 for a in answers[::2])
    negative, positive = answers[0]["probabilities"]["negative"], answers[0]["probabilities"]["positive"]
    assert positive == answers[0]["score"] and negative == pytest.approx(1 - positive, abs=2e-6)
    blank = {"text": "", "label": None, "score": None, "probabilities": None, "error": "empty text"}
    assert answers[1] == blank  # as the service's batch


def test_predict_refuses_a_single_blank_review_in_one_line(trained_run: Path) -> None:
    for blank in ("", "  \t"):
        result = run("predict", str(trained_run), blank)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "the review is empty" in result.stderr
    several = run("predict", str(trained_run), "superb", " ")
    assert several.returncode == 0 and several.stdout.splitlines()[1] == "empty text, not scored"


def test_predict_reads_files_as_datasets_are_read(trained_run: Path, tmp_path: Path) -> None:
    # Undecodable bytes (stdin, a file, an argument), a byte-order mark and CRLF line ends: scored, not a traceback.
    raw = b"\xef\xbb\xbfgood film\r\n\xff\xfe bad\r\nsuperb \xed\xa0\x80 cast\n"
    (tmp_path / "reviews.txt").write_bytes(raw)
    command = [sys.executable, "-m", "reviewlens.cli", "predict", str(trained_run), "--json"]
    outputs = [
        subprocess.run([*command, "--file", "-"], input=raw, capture_output=True, timeout=300),
        subprocess.run([*command, "--file", str(tmp_path / "reviews.txt")], capture_output=True, timeout=300),
        subprocess.run([*command.copy(), *raw.split(b"\n")[:3]], capture_output=True, timeout=300),
    ]
    for result in outputs:
        assert result.returncode == 0, result.stderr.decode()
    answers = [json.loads(result.stdout) for result in outputs[:2]]
    assert answers[0] == answers[1]
    assert [a["text"] for a in answers[0]] == ["good film", "\ufffd\ufffd bad", "superb \ufffd\ufffd\ufffd cast"]
    from_arguments = json.loads(outputs[2].stdout)
    assert [a["score"] for a in from_arguments][1:] == [a["score"] for a in answers[0]][1:]


def test_evaluate_reports_accuracy_auc_and_confusion(trained_run: Path, session_aclimdb: Path) -> None:
    result = run("evaluate", str(trained_run), "--data", str(session_aclimdb), "--json")
    assert result.returncode == 0, result.stderr
    test = json.loads(result.stdout)["test"]
    (tn, fp), (fn, tp) = test["confusion_matrix"]
    assert tn + fp + fn + tp == test["examples"] == 200
    assert test["accuracy"] == pytest.approx((tn + tp) / 200)
    assert 0.5 < test["roc_auc"] <= 1.0
    metadata = json.loads((trained_run / "metadata.json").read_text())
    assert test["accuracy"] == pytest.approx(metadata["test_accuracy"])
    human = run("evaluate", str(trained_run), "--data", str(session_aclimdb))
    assert "ROC AUC" in human.stdout and "confusion matrix" in human.stdout


def test_data_info_json(session_aclimdb: Path) -> None:
    result = run("data", "info", str(session_aclimdb), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["reviews"]["test"] == {"positive": 100, "negative": 100}
    assert info["undecodable"] == ["train/pos/999_9.txt"]


def test_quickstart_trains_evaluates_and_predicts_on_the_embedded_sample(tmp_path: Path) -> None:
    result = run("quickstart", "--json", cwd=tmp_path, env={"REVIEWLENS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metadata"]["data"]["origin"] == "embedded sample"
    assert report["evaluation"]["test"]["examples"] == 1000
    assert report["evaluation"]["test"]["accuracy"] > 0.75
    assert [e["label"] for e in report["examples"]] == ["positive", "negative"]
    assert (tmp_path / report["run_dir"] / "model.keras").is_file()


@pytest.fixture
def broken_run(trained_run: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken-run"
    shutil.copytree(trained_run, broken)
    (broken / "vectorizer.json").unlink()
    return broken


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["train", "--recipe", "bow-bigramm"], "bow-bigramm"),
        (["train", "--data", "{tmp}/missing"], "{tmp}/missing"),
        (["train", "--data", "{tmp}/bad.csv"], "{tmp}/bad.csv"),
        (["train", "--data", "{tmp}", "--epochs", "1"], "{tmp}"),
        (["train", "--data", "{tmp}", "--learning-rate", "0"], "--learning-rate 0.0"),
        # --out is checked before the data is read (bad.csv would be refused too)
        (["train", "--data", "{tmp}/bad.csv", "--out", "{tmp}/bad.csv/run"], "--out: {tmp}/bad.csv is a file, not"),
        (["train", "--data", "{tmp}/bad.csv", "--out", "{tmp}/bad.csv/a/run"], "{tmp}/bad.csv/a is under the file"),
        (["train", "--seed", "-5"], "--seed -5"),
        (["evaluate", "{tmp}/no-run"], "{tmp}/no-run"),
        (["evaluate", "{broken}"], "vectorizer.json"),
        (["evaluate", "{run}", "--plot", "{tmp}"], "--plot {tmp} is a folder"),
        (["predict", "{run}"], "--file"),
        (["predict", "{run}", "--file", "{tmp}/missing.txt"], "{tmp}/missing.txt"),
        (["data", "info", "{tmp}/missing"], "{tmp}/missing"),
        (["data", "download", "--cache-dir", "{tmp}/cache", "--url", "http://127.0.0.1:9/a.tar.gz"], "network"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_code_2(
    args: list[str], names: str, tmp_path: Path, trained_run: Path, broken_run: Path
) -> None:
    write_csv(tmp_path / "bad.csv", [("fine", "positive"), ("odd", "so-so")])

    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, run=trained_run, broken=broken_run)

    result = run(*map(fill, args))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fill(names) in lines[0]
    assert result.stdout == ""


def test_an_out_of_range_port_is_a_usage_error(trained_run: Path) -> None:
    result = run("serve", str(trained_run), "--port", "99999")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--port'" in result.stderr and "65535" in result.stderr


def test_training_into_an_existing_run_refuses_and_keeps_it(trained_run: Path, session_aclimdb: Path) -> None:
    before = sorted(p.name for p in trained_run.iterdir())
    result = run("train", "--data", str(session_aclimdb), "--out", str(trained_run))
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert sorted(p.name for p in trained_run.iterdir()) == before
