"""`reviewlens tune`: a study chooses on validation only, prunes, continues after a kill, and refuses bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

import reviewlens
from reviewlens import tuning
from reviewlens.checkpoints import staging_dir
from reviewlens.errors import ReviewlensError
from reviewlens.recipes import Choice, Range, get_recipe
from reviewlens.runs import METADATA_FILE, RunMetadata, read_metadata
from reviewlens.training import TrainResult

from .test_cli import run

# bow-bigram with a small space: the search is the recipe's, the figures come from the fakes below.
RECIPE = dataclasses.replace(
    get_recipe("bow-bigram"),
    epochs=3,
    search={"learning_rate": Range(1e-4, 1e-2, log=True), "model.dropout": Choice((0.0, 0.5))},
)


class Killed(BaseException):
    """What a SIGKILL leaves: the trial never told Optuna it ended."""


def fake_train(run_dir: Path, calls: list[dict[str, Any]], scores: list[tuple[float, float]],
               act: Callable[[int, Path], None] = lambda call, out: None) -> Callable[..., TrainResult]:  # fmt: skip
    """A stand-in for ``train``: reports three epochs, then writes a copy of ``run_dir`` with the next
    (validation, test) accuracy of ``scores``; ``act`` runs first (to kill the call, or look at its folder)."""

    def train(
        recipe: Any, data: Any, out: Path, *, seed: int, on_epoch: Any, resume: bool, options: Any = None
    ) -> TrainResult:
        calls.append({"recipe": recipe, "resume": resume, "out": out, "options": options})
        act(len(calls) - 1, out)
        val, test = scores[len(calls) - 1]
        for epoch in (1, 2, 3):
            on_epoch(epoch, 3, {"val_accuracy": val, "val_loss": 0.5})
        shutil.rmtree(staging_dir(out), ignore_errors=True)  # train's, once the run is written
        shutil.copytree(run_dir, out)
        metadata = json.loads((out / METADATA_FILE).read_text()) | {"val_accuracy": val, "test_accuracy": test}
        (out / METADATA_FILE).write_text(json.dumps(metadata))
        return TrainResult(out, RunMetadata.from_dict(metadata))

    return train


def table(folder: Path) -> list[dict[str, str]]:
    with open(folder / tuning.TABLE_CSV, encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_the_chosen_trial_is_the_best_on_validation_never_on_test(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    # Trial 0 has the best test accuracy and the worst validation accuracy; trial 1 the best validation.
    scores = [(0.80, 0.95), (0.90, 0.80), (0.85, 0.90)]
    monkeypatch.setattr(tuning, "train", fake_train(trained_run, calls, scores))
    result = tuning.tune(RECIPE, session_aclimdb, tmp_path / "t", budget=600, trials=3)
    assert result.best.number == 1 and result.best.val_accuracy == 0.90
    assert result.test_accuracy == 0.80  # the chosen run's, not the best test figure
    assert read_metadata(tmp_path / "t" / "best").val_accuracy == 0.90
    # The first trial is the recipe's own settings, the baseline; every trial is in the table.
    assert calls[0]["recipe"].learning_rate == 1e-3 and calls[0]["recipe"].model["dropout"] == 0.5
    assert result.baseline is not None and result.baseline.number == 0
    rows = table(tmp_path / "t")
    assert [(row["trial"], row["state"], row["val_accuracy"]) for row in rows] == [
        ("0", "complete", "0.8"), ("1", "complete", "0.9"), ("2", "complete", "0.85")
    ]  # fmt: skip
    assert {"learning_rate", "model.dropout"} <= set(rows[0])
    assert "test" not in " ".join(rows[0])  # no test column to choose by


def test_a_killed_study_continues_its_killed_trial_from_its_checkpoint_and_counts_on(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    seen: list[list[str]] = []

    def act(call: int, out: Path) -> None:
        if call == 1:  # the second trial is killed after a checkpoint
            staging_dir(out).mkdir(parents=True)
            (staging_dir(out) / "checkpoint.npz").write_bytes(b"epoch 1")
            raise Killed
        seen.append(sorted(p.name for p in staging_dir(out).glob("*")))

    scores = [(0.8, 0.8), (0.0, 0.0), (0.9, 0.9), (0.7, 0.7), (0.6, 0.6)]
    monkeypatch.setattr(tuning, "train", fake_train(trained_run, calls, scores, act))
    folder = tmp_path / "t"
    with pytest.raises(Killed):
        tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=3)
    result = tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=3)  # the killed one does not count
    assert [row.state for row in result.trials] == ["complete", "failed or killed", "complete", "complete"]
    retried = calls[2]
    assert retried["recipe"] == calls[1]["recipe"] and retried["resume"] is True  # the same settings, resumed
    assert seen[1] == ["checkpoint.npz"]  # the killed trial's checkpoint, under the new trial's name
    assert result.best.number == 2
    # The same command with room for one more trial: one more trial, numbered after the others.
    result = tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=4)
    assert [row.number for row in result.trials] == [0, 1, 2, 3, 4] and len(calls) == 5
    assert len(table(folder)) == 5


def test_a_study_killed_in_its_last_trial_runs_the_retry_when_resumed(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def act(call: int, out: Path) -> None:
        if call == 3:  # the fourth and last trial is killed
            raise Killed

    scores = [(0.8, 0.8), (0.7, 0.7), (0.6, 0.6), (0.0, 0.0), (0.9, 0.9)]
    monkeypatch.setattr(tuning, "train", fake_train(trained_run, calls, scores, act))
    folder = tmp_path / "t"
    with pytest.raises(Killed):
        tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=4)
    logged: list[str] = []
    result = tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=4, log=logged.append)
    assert len(calls) == 5 and calls[4]["recipe"] == calls[3]["recipe"]  # the retry ran
    assert [row.state for row in result.trials] == ["complete"] * 3 + ["failed or killed", "complete"]
    assert result.best.number == 4 and not any("spent" in line for line in logged)
    again: list[str] = []
    tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=4, log=again.append)
    assert len(calls) == 5 and any("has run its 4 trial(s) (--trials 4)" in line for line in again)


def test_a_budget_that_cannot_fit_one_trial_is_one_line_and_keeps_nothing(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "train", fake_train(trained_run, [], [(0.9, 0.9)], lambda *_: time.sleep(0.3)))
    with pytest.raises(ReviewlensError, match=r"--budget 0s cannot fit one trial of bow-bigram .*after epoch 1 of 3"):
        tuning.tune(RECIPE, session_aclimdb, tmp_path / "t", budget=0.2)
    assert not (tmp_path / "t").exists()


def test_a_pretrained_recipe_is_tuned_on_one_encoder_and_its_study_keeps_it(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewlens.pretraining import Sizes, pretrain

    encoder = tmp_path / "encoder"
    pretrain(session_aclimdb, encoder, sizes=Sizes(vocabulary=100, embedding=4, units=4, length=8, sampled=16))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tuning, "train", fake_train(trained_run, calls, [(0.8, 0.8), (0.9, 0.9)]))
    recipe = get_recipe("pretrained-vat")
    tuning.tune(recipe, session_aclimdb, tmp_path / "t", budget=600, trials=2, options={"encoder": encoder})
    assert [call["options"] for call in calls] == [{"encoder": encoder}] * 2  # every trial fine-tunes it
    assert calls[0]["recipe"] == recipe  # the first trial is the recipe as it is
    assert {call["recipe"].model["schedule"] for call in calls} <= {"constant", "slanted"}
    other = tmp_path / "other"
    shutil.copytree(encoder, other)
    with pytest.raises(ReviewlensError, match=r"holds a study of other settings.*options"):
        tuning.tune(recipe, session_aclimdb, tmp_path / "t", budget=600, trials=3, options={"encoder": other})
    with pytest.raises(ReviewlensError, match="pass --encoder DIR"):
        tuning.tune(recipe, session_aclimdb, tmp_path / "t2", budget=600, trials=1)
    assert not (tmp_path / "t2").exists() and len(calls) == 2


class PruneAllButTheFirst(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0


def test_a_study_writes_the_best_run_and_prunes_a_trial_leaving_no_killed_run(aclimdb: Path, tmp_path: Path) -> None:
    folder = tmp_path / "t"
    result = tuning.tune(RECIPE, aclimdb, folder, budget=600, trials=2, pruner=PruneAllButTheFirst())
    first, pruned = result.trials
    assert (first.state, first.epochs, pruned.state, pruned.epochs) == ("complete", 3, "pruned", 1)
    assert result.best.number == 0
    assert sorted(p.name for p in (folder / "trials").iterdir()) == ["000"]  # no run, no staging for the pruned
    best = reviewlens.load(folder / "best")
    assert best.predict(["A wonderful, moving film."]).shape == (1,)
    assert [row["state"] for row in table(folder)] == ["complete", "pruned"]
    assert json.loads((folder / tuning.TABLE_JSON).read_text())[1]["state"] == "pruned"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--recipe", "bow-bigram", "--budget", "ten minutes"], "--budget 'ten minutes' is not a duration"),
        (["--recipe", "bow-bigramm", "--budget", "10m"], "unknown recipe 'bow-bigramm'"),
        (["--recipe", "dense-10k", "--budget", "10m"], "recipe 'dense-10k' declares no search space"),
        (["--recipe", "pretrained-vat", "--budget", "10m"], "pass --encoder DIR"),
        (["--recipe", "pretrained-vat", "--budget", "10m", "--encoder", "nowhere"], "--encoder nowhere: no such"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], named: str, tmp_path: Path) -> None:
    result = run("tune", *args, "--out", str(tmp_path / "t"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and named in result.stderr
    assert not (tmp_path / "t").exists()


def test_budgets_read_as_durations() -> None:
    assert [tuning.parse_budget(text) for text in ("90s", "10m", "1h", "1h30m", "2.5m")] == [90, 600, 3600, 5400, 150]
    assert [tuning.duration(seconds) for seconds in (90, 600, 5400, 0.2)] == ["1m30s", "10m", "1h30m", "0s"]


@pytest.mark.parametrize("name", tuning.tunable())
def test_every_search_space_holds_its_recipes_own_settings(name: str) -> None:
    # The first trial is the recipe as it is: a space that left it out would search without the baseline.
    recipe = get_recipe(name)
    for setting, value in tuning.own_settings(recipe).items():
        space = recipe.search[setting]
        assert value in space.values if isinstance(space, Choice) else space.low <= value <= space.high, setting
    assert tuning.with_settings(recipe, tuning.own_settings(recipe)) == recipe


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_a_damaged_study_is_one_line_and_left_as_it_is(session_aclimdb: Path, tmp_path: Path, damage: str) -> None:
    import optuna

    folder = tmp_path / "t"
    folder.mkdir()
    study = folder / tuning.STUDY_FILE
    if damage == "garbage":
        study.write_bytes(b"not a database at all" * 100)
    else:  # a whole study, cut short (a copy that stopped halfway)
        whole = tmp_path / "whole.db"
        made = optuna.create_study(storage=f"sqlite:///{whole}", study_name="x")
        made.optimize(lambda trial: trial.suggest_float("a", 0, 1), n_trials=3)
        study.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    before = study.read_bytes()
    with pytest.raises(ReviewlensError, match=r"study\.db is damaged .*move it away to start the study again") as bad:
        tuning.tune(RECIPE, session_aclimdb, folder, budget=600, trials=1)
    assert "\n" not in str(bad.value)
    assert study.read_bytes() == before  # the user's study is not touched
