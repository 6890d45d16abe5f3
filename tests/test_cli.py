"""The command line as a user runs it: output formats, --json purity, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_review, write_csv


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
        errors="surrogateescape",  # a file name that is not UTF-8 is printed as its bytes, as ls prints it
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
    # reviewlens' own figures beside the source's, saying what they were measured on
    assert recipes["nbsvm-plus"]["measured"]["accuracy"] == 0.9228 and recipes["nbsvm-plus"]["measured"]["seconds"] > 0
    assert "25,000" in recipes["nbsvm-plus"]["measured"]["on"] and recipes["char-cnn"]["measured"] is None
    assert "92.28%, 32 s" in table and "measured on IMDB test (25,000 reviews)" in table


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


def test_help_shows_flags_as_flags_and_every_default_it_names() -> None:
    from reviewlens.recipes import DEFAULT_RECIPE

    helps = {command: run(command, "--help") for command in ("train", "score", "runs")}
    for command, result in helps.items():
        assert result.returncode == 0, result.stderr
        text = " ".join(result.stdout.split())  # as one line: a default may wrap
        assert "<bool>" not in text, command  # a flag takes no value
        assert not re.search(r" \.( |$)", text), command  # "Epochs ." was a default dropped as markup
        assert "--json Print only JSON on stdout." in text, command
    train = " ".join(helps["train"].stdout.split())
    assert f"[default: {DEFAULT_RECIPE}," in train and "Epochs [default: the recipe's]." in train
    assert "--bucket / --no-bucket" in train and "[default: bucket]" in train


def test_train_json_prints_only_the_metadata_on_stdout_and_a_line_per_epoch_off_a_terminal(
    session_aclimdb: Path, tmp_path: Path
) -> None:
    """stdout holds the metadata alone; the progress goes to stderr, which a log (stderr piped, as here) keeps as
    one plain line per epoch: what, how far, the rate, the time left, the metrics; not rich's bar drawn once and
    clipped ("traini… epoch 3…")."""
    result = run("train", "--recipe", "bow-unigram", "--data", str(session_aclimdb), "--epochs", "3",
                 "--out", str(tmp_path / "run"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metadata = json.loads(result.stdout)
    assert metadata["recipe"] == "bow-unigram"
    assert metadata["hyperparameters"]["epochs"] == 3
    assert json.loads((tmp_path / "run" / "metadata.json").read_text()) == metadata
    assert "\u2026" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("train bow-unigram: epoch ")]
    expected = [f"train bow-unigram: epoch {n}/3" for n in (1, 2, 3)]
    assert [line.split(",")[0] for line in lines] == expected, result.stderr
    for line in lines:
        assert re.search(r", [\d.,]+ (s/epoch|epochs/s), \d\d:\d\d:\d\d left, loss [\d.]+ .*val_accuracy [\d.]+$", line)


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
    assert answers[1] == {"line": 2, **blank}  # as the service's batch, and which line of the file
    assert [a["line"] for a in answers] == [1, 2, 3]


def test_predict_says_which_line_of_the_file_each_answer_is(trained_run: Path) -> None:
    stdin = "superb brilliant wonderful film with a moving story and a fine cast\n\nawful dull\n"
    result = run("predict", str(trained_run), "an argument", "--file", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    argument, *lines = result.stdout.splitlines()
    assert re.fullmatch(r"\d{1,3}\.\d\d% (positive|negative)", argument)  # an argument has no line
    assert re.fullmatch(r"line 1: \d{1,3}\.\d\d% positive: superb brilliant wonderful film with a m\.\.\.", lines[0])
    assert lines[1] == "line 2: empty text, not scored"
    assert re.fullmatch(r"line 3: \d{1,3}\.\d\d% negative: awful dull", lines[2])


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


def test_evaluate_without_data_scores_the_test_split_of_the_data_the_run_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewlens.training import train

    rng = random.Random(5)
    rows = [(make_review(rng, i % 2), "positive" if i % 2 else "negative") for i in range(200)]
    data = write_csv(tmp_path / "tiny.csv", rows)
    monkeypatch.chdir(tmp_path)  # trained on a relative path, evaluated from elsewhere: the run records where it is
    train("nbsvm", Path("tiny.csv"), tmp_path / "runs" / "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = {"REVIEWLENS_CACHE": str(tmp_path / "cache")}  # no download cache: the sample would be resolved

    result = run("evaluate", str(tmp_path / "runs" / "tiny"), "--json", cwd=elsewhere, env=cache)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["data"], report["split"], report["test"]["examples"]) == (str(data), "test", 40)  # 20% held out
    assert f"evaluating on {data}'s test split (recorded in the run)" in result.stderr

    listed = run("runs", str(tmp_path / "runs"), cwd=elsewhere)
    assert "data" in listed.stdout and "tiny.csv" in listed.stdout
    [entry] = json.loads(run("runs", str(tmp_path / "runs"), "--json").stdout)["runs"]
    assert (entry["data"], entry["data_origin"]) == (str(data), "--data")

    data.unlink()
    gone = run("evaluate", str(tmp_path / "runs" / "tiny"), cwd=elsewhere, env=cache)
    assert gone.returncode == 2 and gone.stdout == ""
    assert gone.stderr.count("\n") == 1 and f"{data}, the data" in gone.stderr and "--data PATH" in gone.stderr


def test_evaluate_of_a_run_of_the_embedded_sample_or_of_no_recorded_data(trained_run: Path, tmp_path: Path) -> None:
    # A run of the sample from another install (its recorded path is gone) gets this one's; a run recording no
    # data gets the data resolved as for train. runs_in reads metadata.json unchecked; load checks every other file.
    cache = {"REVIEWLENS_CACHE": str(tmp_path / "cache")}
    for name, recorded in (("sample", {"origin": "embedded sample", "path": "/gone/imdb_sample.tar.gz"}), ("none", {})):
        copy = tmp_path / "runs" / name
        shutil.copytree(trained_run, copy)
        metadata = json.loads((copy / "metadata.json").read_text())
        (copy / "metadata.json").write_text(json.dumps({**metadata, "data": recorded}))
        result = run("evaluate", str(copy), "--json", env=cache)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["test"]["examples"] == 1000  # the sample's test split
        said = "evaluating on the embedded sample's test split (recorded in the run)" if recorded else "records no data"
        assert said in result.stderr
    table = run("runs", str(tmp_path / "runs")).stdout
    assert "embedded sample" in table


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


def test_the_next_command_quickstart_prints_works_in_a_fresh_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` installs into .venv, which a new shell lacks on its PATH: the line it ends with must still run."""
    from reviewlens.cli import _command

    bindir = Path(sys.executable).parent
    if not (bindir / "reviewlens").is_file():
        pytest.skip("reviewlens is not installed as a command next to this Python")
    monkeypatch.chdir(bindir.parent.parent)  # the project root, where `make run` runs
    fresh = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != bindir.resolve()]
    monkeypatch.setenv("PATH", os.pathsep.join(fresh))
    command = _command()
    assert command == str(Path(bindir.parent.name) / "bin" / "reviewlens")
    shell = subprocess.run(["bash", "-c", f"{command} --help"], capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0, shell.stderr
    assert "Usage" in shell.stdout
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), *fresh]))  # an activated venv
    assert _command() == "reviewlens"


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
