"""The ``reviewlens`` command line: parses, calls the API, prints; no logic of its own.

Results go to stdout (with ``--json``: only the JSON); progress and messages go to stderr. A user's
mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from reviewlens.data.sources import MAX_REVIEW_BYTES
from reviewlens.errors import ReviewlensError

#: Help is plain text, as click formats it: typer's rich mode reads "[default: ...]" in a help text as a markup tag
#: and drops it (leaving "Epochs ."), and shows "<bool>" as a value of every flag.
PLAIN_HELP = None
app = typer.Typer(
    help="Train, compare and serve sentiment classifiers of review text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=PLAIN_HELP,
)
data_app = typer.Typer(help="Download and inspect review datasets.", no_args_is_help=True, rich_markup_mode=PLAIN_HELP)
app.add_typer(data_app, name="data")
embeddings_app = typer.Typer(
    help="Word vectors for the pretrained-embedding recipes.", no_args_is_help=True, rich_markup_mode=PLAIN_HELP
)
app.add_typer(embeddings_app, name="embeddings")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="aclImdb directory, .tar.gz, .csv or .jsonl [default: $REVIEWLENS_DATA, the "
                 "download cache, else the embedded sample]"),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


class LabelChoice(StrEnum):
    sentiment = "sentiment"
    rating = "rating"


class SelectChoice(StrEnum):
    accuracy = "accuracy"
    macro_f1 = "macro-f1"


LabelsOption = Annotated[
    LabelChoice,
    typer.Option(
        "--labels",
        help="aclImdb data: label each review by its sentiment (pos/neg folder) or by its rating, 1-10 "
        "(from ID_RATING.txt). CSV and JSONL use their label column.",
    ),
]
MaxReviewBytesOption = Annotated[
    int,
    typer.Option(
        "--max-review-bytes",
        help="Cut a review longer than this many bytes (UTF-8) there, with a warning.",
        metavar="BYTES",
    ),
]
RunDirArgument = Annotated[Path, typer.Argument(help="A run directory written by `reviewlens train`.")]


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show TensorFlow's own start-up and log lines too.")
    ] = False,
) -> None:
    if verbose:
        from reviewlens.processes import loud_tensorflow

        loud_tensorflow()


EXAMPLES = [
    "That was an excellent movie, I loved it. The cast was wonderful and the story moved me.",
    "A dull, badly acted mess. I wanted my two hours back.",
]


def _print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def _shown(run: Any, probability: float) -> str:
    """The run's label and the probability of it: 0.9086 -> "90.86% positive", 0.2 -> "80.00% negative"."""
    label = run.label(probability)
    confidence = probability if label == run.labels[-1] else 1.0 - probability
    return f"{confidence:.2%} {label}"


class _Progress(Progress):
    """rich's live bar where stderr is a terminal; elsewhere (a log file, CI, a pipe) a plain line per update, or
    per ``every_s`` seconds at most, that a log keeps whole: what, how far, the rate, the time left and the
    task's ``fields`` (``"train bow-bigram: epoch 3/10, 0.5 epochs/s, 00:14 left, loss 0.2678 ..."``). A bar off
    a terminal is drawn once, when it ends, clipped to 80 columns: "traini… epoch 3…"."""

    def __init__(self, *columns: Any, unit: str, every_s: float = 0.0, **kwargs: Any):
        console = kwargs.setdefault("console", err)
        self._plain = not console.is_terminal
        self._unit, self._every_s, self._last_line = unit, every_s, -float("inf")
        super().__init__(*columns, **{**kwargs, "disable": kwargs.get("disable", False) or self._plain})

    def update(self, task_id: Any, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        if self._plain:
            self._line(task_id)

    def advance(self, task_id: Any, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self._plain:
            self._line(task_id)

    def _line(self, task_id: Any) -> None:
        import time

        task = next(task for task in self.tasks if task.id == task_id)
        now = time.monotonic()
        if not task.completed or now - self._last_line < self._every_s:
            return
        self._last_line = now
        self.console.print(_progress_line(task, self._unit), markup=False, highlight=False, soft_wrap=True)


def _progress_line(task: Any, unit: str) -> str:
    """One plain progress line of a rich task: ``what: how far, rate, time left, fields``."""
    elapsed = task.elapsed or 0.0
    rate = task.completed / elapsed if elapsed > 0 else 0.0
    if unit == "bytes":
        far = f"{task.completed / task.total:.0%} of {task.total / 1e6:,.2f} MB" if task.total else "started"
        shown_rate = f"{rate / 1e6:,.2f} MB/s"
    else:
        far = f"{unit} {task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "")
        shown_rate = f"{1 / rate:,.1f} s/{unit}" if 0 < rate < 1 else f"{rate:,.0f} {unit}s/s"
    parts = [far, shown_rate]
    if task.total and rate > 0:
        left = max(task.total - task.completed, 0) / rate
        parts.append(f"{int(left) // 3600:02d}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d} left")
    parts += [str(value) for value in task.fields.values() if str(value)]
    return f"{task.description}: " + ", ".join(parts)


class _OnEpoch(Protocol):
    def __call__(self, epoch: int, epochs: int, logs: dict[str, float], what: str | None = None) -> None: ...


@contextmanager
def _epoch_progress(enabled: bool, epochs: int, what: str = "training") -> Iterator[_OnEpoch | None]:
    """A training's progress, epoch by epoch; ``on_epoch(..., what=...)`` names another training (``compare``)."""
    if not enabled:
        yield None
        return
    with _Progress(
        TextColumn("training"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[logs]}"),
        TimeElapsedColumn(),
        unit="epoch",
        transient=False,
    ) as progress:
        task = progress.add_task(what, total=epochs, logs="", visible=False)  # shown from the first epoch

        def on_epoch(epoch: int, epochs: int, logs: dict[str, float], what: str | None = None) -> None:
            if what is not None and what != progress.tasks[0].description:  # its own rate and time left
                progress.reset(task, total=epochs, description=what)
            shown = " ".join(f"{k} {v:.4f}" for k, v in logs.items())
            progress.update(task, completed=epoch, total=epochs, logs=shown, visible=True)

        yield on_epoch


@app.command()
def recipes(as_json: JsonOption = False) -> None:
    """List the recipes, with their source and expected test accuracy."""
    from reviewlens.families import get_family
    from reviewlens.recipes import DEFAULT_RECIPE, MEASURED_ON, catalogue

    recipes = catalogue()

    if as_json:
        _print_json(
            [
                {
                    **recipe.to_dict(),
                    "options": list(get_family(recipe.family).options.names()),
                    "measured": None if recipe.measured is None else asdict(recipe.measured),
                }
                for recipe in recipes.values()
            ]
        )
        return
    table = Table(title="reviewlens recipes")
    # A name is what the user types next: never cut, however narrow the terminal or pipe (80 columns); the
    # other columns fold instead.
    names = [
        recipe.name + (" (default)" if recipe.name == DEFAULT_RECIPE else "") + (" (slow)" if recipe.slow else "")
        for recipe in recipes.values()
    ]
    table.add_column("recipe", no_wrap=True, min_width=max(map(len, names)))
    for column in ("model", "source", "source's test accuracy", "reviewlens: test accuracy, train s"):
        table.add_column(column, overflow="fold")
    for name, recipe in zip(names, recipes.values(), strict=True):
        expected = f"{recipe.expected_accuracy:.1%}" if recipe.expected_accuracy else "-"
        measured = recipe.measured
        ours = f"{measured.accuracy:.2%}, {measured.seconds:,.0f} s" if measured else "-"
        table.add_row(name, recipe.summary, recipe.source, expected, ours)
    out.print(table)
    out.print(f"measured on {MEASURED_ON}", markup=False)  # reviewlens' column


def _train(
    recipe: str | None, data: Path | None, epochs: int | None, run_dir: Path | None, seed: int, quiet: bool,
    options: dict[str, Any] | None = None, calibrate: bool = False, max_review_bytes: int = MAX_REVIEW_BYTES,
    resume: bool = False, class_weight: str | None = None, threshold: str | None = None,
    tensorboard: Path | None = None, mlflow: str | None = None, labels: str = "sentiment", select: str = "accuracy",
    **settings: Any,
) -> Any:  # fmt: skip
    from reviewlens.recipes import DEFAULT_RECIPE
    from reviewlens.tracking import trackers
    from reviewlens.training import configured
    from reviewlens.training import train as train_recipe

    chosen = configured(
        recipe or DEFAULT_RECIPE, **settings
    )  # an unknown recipe or a bad setting fails here, before any work
    with _epoch_progress(not quiet, epochs or chosen.epochs, f"train {chosen.name}") as on_epoch:
        return train_recipe(
            chosen,
            data,
            run_dir,
            epochs=epochs,
            seed=seed,
            log=(lambda message: None)
            if quiet
            else (lambda message: err.print(Text(message, style="dim"), soft_wrap=True)),
            on_epoch=on_epoch,
            options=options,
            calibrate=calibrate,
            max_review_bytes=max_review_bytes,
            resume=resume,
            class_weight=class_weight,
            threshold=threshold,
            trackers=trackers(tensorboard, mlflow),
            labels=labels,  # type: ignore[arg-type]  # one of LabelChoice's values
            select=select,
        )


class Side(StrEnum):
    head = "head"
    tail = "tail"


class Schedule(StrEnum):
    constant = "constant"
    cosine = "cosine"
    plateau = "plateau"
    slanted = "slanted"


class SplitChoice(StrEnum):
    standard = "standard"
    published = "published"


class Backend(StrEnum):
    tensorflow = "tensorflow"
    jax = "jax"


def _print_metrics(title: str, scores: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("accuracy", f"{scores['accuracy']:.2%}")
    table.add_row("loss", f"{scores['loss']:.4f}")
    table.add_row("ROC AUC", _ratio(scores["roc_auc"]))
    table.add_row("macro-F1", f"{scores['macro_f1']:.4f}")
    table.add_row("PR AUC (average precision)", _ratio(scores["average_precision"]))
    if "ece" in scores:
        table.add_row(f"calibration error (ECE, {scores['ece_bins']} bins)", f"{scores['ece']:.4f}")
    table.add_row("reviews", f"{scores['examples']:,}")
    out.print(table)
    names = list(scores["per_label"])  # the run's labels, in order: the confusion matrix's rows and columns
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    for column in ("", *names):
        matrix.add_column(column, justify="right")
    for name, row in zip(names, scores["confusion_matrix"], strict=True):
        matrix.add_row(name, *(f"{count:,}" for count in row))
    out.print(matrix)
    labels = Table(title="per label")
    for column in ("label", "precision", "recall", "F1", "PR AUC", "reviews"):
        labels.add_column(column, justify="right")
    for name, row in scores["per_label"].items():
        labels.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                       _ratio(row["average_precision"]), f"{row['support']:,}")  # fmt: skip
    out.print(labels)


def _ratio(value: float | None) -> str:
    """A score in [0, 1] to four places, or "-" where it is undefined (a split with one class)."""
    return "-" if value is None else f"{value:.4f}"


@app.command()
def train(
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            "-r",
            help="Recipe name (see `reviewlens recipes`) [default: nbsvm-plus, the fastest accurate one].",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs [default: the recipe's].")] = None,
    run_dir: Annotated[Path | None, typer.Option("--out", help="Run directory [default: runs/RECIPE-TIME].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for initialization, shuffling and dropout.")] = 1337,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Reviews per training step [default: the recipe's].")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", min=0.0, help="Optimizer step size [default: the recipe's].")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            "--max-length", min=1, help="Sequence and character recipes: tokens (characters) kept per review."
        ),
    ] = None,
    truncate: Annotated[
        Side | None, typer.Option("--truncate", help="Sequence recipes: cut long reviews at the head or the tail.")
    ] = None,
    early_stopping: Annotated[
        int | None,
        typer.Option(
            "--early-stopping",
            min=1,
            help="Sequence recipes: stop after N epochs without a lower validation loss.",
            metavar="N",
        ),
    ] = None,
    lr_schedule: Annotated[
        Schedule | None,
        typer.Option(
            "--lr-schedule",
            help="Learning-rate schedule: sequence recipes all but slanted; pretrained-* "
            "recipes constant or slanted (ULMFiT's).",
        ),
    ] = None,
    clipnorm: Annotated[
        float | None, typer.Option("--clipnorm", min=0.0, help="Sequence recipes: clip each gradient's norm.")
    ] = None,
    embeddings: Annotated[
        Path | None, typer.Option("--embeddings", help="bilstm-pretrained: word vectors, GloVe or word2vec text.")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Sequence recipes: stream reviews from the source in batches.")
    ] = False,
    bucket: Annotated[
        bool | None,
        typer.Option(
            "--bucket/--no-bucket",
            help="Sequence recipes: batch reviews of similar lengths where padding "
            "cannot change a score [default: bucket].",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option("--backend", help="Sequence recipes: Keras backend for training (jax needs the jax extra)."),
    ] = None,
    members: Annotated[
        str | None,
        typer.Option(
            "--members",
            help="ensemble: the runs to combine, comma-separated run directories trained on the same data.",
            metavar="RUN,RUN,...",
        ),
    ] = None,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="Fit a temperature on validation so probabilities are calibrated.")
    ] = False,
    select: Annotated[
        SelectChoice,
        typer.Option(
            "--select",
            help="The validation figure the best epoch is chosen by (macro-f1: bag-of-words, linear and fastText "
            "recipes).",
        ),
    ] = SelectChoice.accuracy,
    log_patterns: Annotated[
        Path | None,
        typer.Option(
            "--log-patterns",
            help="Character recipes: write the patterns, value and gradient logs to this folder.",
            metavar="DIR",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the killed run of this --out from its last finished epoch (same recipe, settings, data).",
        ),
    ] = False,
    split: Annotated[
        SplitChoice | None,
        typer.Option("--split", help="Character recipes: aclImdb's train/test (standard) or the package's 70/15/15."),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            "--tensorboard",
            help="Write TensorBoard event files to DIR/RUN-NAME (needs the tensorboard extra).",
            metavar="DIR",
        ),
    ] = None,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow",
            help="Log to MLflow at --mlflow-uri, else $MLFLOW_TRACKING_URI, else a ./mlruns store (the mlflow extra).",
        ),
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option("--mlflow-uri", help="The MLflow tracking URI to log to (implies --mlflow).", metavar="URI"),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            "--class-weight",
            help="Weigh each review's loss by its label: balanced (by the train split's counts) or weights, "
            "e.g. negative=9,positive=1.",
            metavar="balanced|LABEL=W,...",
        ),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            "--threshold",
            help="Decision threshold chosen on validation: best-f1 (highest macro-F1), precision=P (the lowest "
            "reaching precision P for positive) or a number [default: 0.5].",
            metavar="best-f1|precision=P|T",
        ),
    ] = None,
    encoder: Annotated[
        Path | None,
        typer.Option(
            "--encoder", help="pretrained-* recipes: an encoder directory from `reviewlens pretrain`.", metavar="DIR"
        ),
    ] = None,
    labels: LabelsOption = LabelChoice.sentiment,
    max_review_bytes: MaxReviewBytesOption = MAX_REVIEW_BYTES,
    as_json: JsonOption = False,
) -> None:
    """Train a recipe; write the model, metrics, history and curves to a run directory."""
    chosen: dict[str, Any] = {
        "max_length": max_length, "truncate": truncate and truncate.value, "early_stopping": early_stopping,
        "lr_schedule": lr_schedule and lr_schedule.value, "clipnorm": clipnorm, "embeddings": embeddings,
        "stream": stream or None, "bucket": bucket, "backend": backend and backend.value,
        "members": members and tuple(Path(part.strip()) for part in members.split(",") if part.strip()),
        "log_patterns": log_patterns, "split": split and split.value, "encoder": encoder,
    }  # fmt: skip
    if backend is not None:
        os.environ["KERAS_BACKEND"] = backend.value  # read once, when Keras is first imported (below)
    options = {name: value for name, value in chosen.items() if value is not None}
    result = _train(
        recipe, data, epochs, run_dir, seed, quiet=False, options=options,
        batch_size=batch_size, learning_rate=learning_rate, calibrate=calibrate, max_review_bytes=max_review_bytes,
        resume=resume, class_weight=class_weight, threshold=threshold,
        tensorboard=tensorboard, mlflow=mlflow_uri or ("" if mlflow else None), labels=labels.value,
        select=select.value,
    )  # fmt: skip
    metadata = result.metadata
    if as_json:
        _print_json(metadata.to_json())
        return
    decided = f", threshold {metadata.threshold:.4g}" if threshold is not None else ""
    out.print(
        f"{metadata.recipe}: validation accuracy {metadata.val_accuracy:.2%}, "
        f"test accuracy {metadata.test_accuracy:.2%} (best epoch {metadata.best_epoch}{decided}, "
        f"{metadata.timings['total_s']:.1f} s)"
    )
    out.print(f"run directory: {result.run_dir}")


def _evaluate(run_dir: Path, data: Path | None, quiet: bool = False, plot: Path | None = None) -> dict[str, Any]:
    from reviewlens import load
    from reviewlens.data import labelled_file, read_labelled
    from reviewlens.evaluation import (
        CALIBRATION_BINS,
        expected_calibration_error,
        label_scores_of,
        metrics,
        plot_reliability,
    )

    if plot is not None and not plot.parent.is_dir():
        raise ReviewlensError(f"--plot {plot}: the folder {plot.parent} does not exist; create it or choose another")
    if plot is not None and plot.is_dir():  # checked before the data is read: the diagram is a file, not a folder
        raise ReviewlensError(
            f"--plot {plot} is a folder; pass a file name for the diagram, such as {plot / 'reliability.png'}"
        )
    run = load(run_dir)
    if data is not None and labelled_file(data):  # reviews from elsewhere: every row is for evaluation
        cut: list[int] = []
        texts, labels = read_labelled(data, run.labels, cut=cut)
        source, split = str(data), "all"
        if not quiet:
            err.print(Text(f"data: {data} (--data); scoring all its {len(labels):,} reviews", style="dim"))
            if cut:
                lines = ", ".join(map(str, cut[:5])) + (", ..." if len(cut) > 5 else "")
                err.print(Text(f"cut {len(cut):,} reviews longer than {MAX_REVIEW_BYTES:,} bytes, as train does "
                               f"(line {lines})", style="dim"))  # fmt: skip
    else:
        resolved, said = _evaluation_data(run_dir, run.metadata, data)
        if list(resolved.dataset.label_names) != run.labels:
            raise ReviewlensError(
                f"{resolved.dataset.path} has the labels {', '.join(resolved.dataset.label_names)} and {run_dir} "
                f"learned {', '.join(run.labels)}; evaluate it on data with the same labels"
            )
        if not quiet:
            err.print(Text(said, style="dim"), soft_wrap=True)
        texts, labels = resolved.dataset.read("test")
        source, split = str(resolved.dataset.path), "test"
    probabilities = label_scores_of(run.predict_proba(texts))
    scores = metrics(probabilities, labels, run.threshold, run.labels)
    scores["ece"] = expected_calibration_error(probabilities, labels, threshold=run.threshold)
    scores["ece_bins"] = CALIBRATION_BINS
    report = {"run_dir": str(run_dir), "recipe": run.recipe, "data": source, "split": split, "test": scores}
    if plot is not None:
        title = f"{run.recipe} on {Path(source).name} ({split})"
        report["plot"] = str(plot_reliability(probabilities, labels, plot, threshold=run.threshold, title=title))
    return report


def _evaluation_data(run_dir: Path, metadata: Any, data: Path | None) -> tuple[Any, str]:
    """The dataset whose test split ``evaluate`` scores, read as the run's was (its labels), and the line that says
    which: ``--data``, else the data the run records it was trained on (another data's test split would measure
    something else, silently), else, for a run that records none, the data resolved as for ``train``."""
    from reviewlens.data import SAMPLE_ORIGIN, resolve

    kind = metadata.data.get("labels", "sentiment")
    if data is not None:
        resolved = resolve(data, labels=kind)
        return resolved, f"{resolved.describe()}; scoring its test split"
    recorded = metadata.trained_on()
    if recorded is None:
        resolved = resolve(None, labels=kind)
        return resolved, f"{run_dir} records no data; {resolved.describe()}; scoring its test split"
    if not recorded.exists():
        raise ReviewlensError(
            f"{recorded}, the data {run_dir} was trained on, is gone; pass the data to evaluate on with --data PATH"
        )
    resolved = resolve(recorded, labels=kind)
    name = "the embedded sample" if metadata.data.get("origin") == SAMPLE_ORIGIN else str(recorded)
    return resolved, f"evaluating on {name}'s test split (recorded in the run)"


@app.command()
def evaluate(
    run_dir: RunDirArgument,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A dataset (its test split is scored: aclImdb directory, .tar.gz, .csv or .jsonl with a split "
            "column), or labelled reviews scored whole: a .tsv (text<TAB>label, no header), or a .csv "
            "(review,sentiment or text,label) or .jsonl (text, label) without a split column "
            "[default: the data the run was trained on, recorded in it]",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a reliability diagram (PNG) here.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a trained model: accuracy, loss, ROC AUC, macro-F1, PR AUC, confusion matrix, per-label precision,
    recall and F1, expected calibration error."""
    report = _evaluate(run_dir, data, plot=plot)
    if as_json:
        _print_json(report)
        return
    rows = "test" if report["split"] == "test" else "all rows"
    _print_metrics(f"{report['recipe']} on {report['data']} ({rows})", report["test"])
    if "plot" in report:
        out.print(f"reliability diagram: {report['plot']}", markup=False)


def _read_reviews(file: Path) -> list[str]:
    """One review per line of ``file`` (``-``: stdin), decoded as UTF-8 the way datasets are: a byte-order mark
    dropped, bytes that are not UTF-8 replaced by U+FFFD, a review longer than ``MAX_REVIEW_BYTES`` cut there (read
    by the one bounded line reader: a line's memory never grows past the bound)."""
    from reviewlens.files import LongLine, bounded_lines, cut_utf8

    def reviews(handle: Any) -> list[str]:
        return [
            cut_utf8(line.head if isinstance(line, LongLine) else line, MAX_REVIEW_BYTES).decode("utf-8", "replace")
            for _, line in bounded_lines(handle, MAX_REVIEW_BYTES)
        ]

    try:
        if str(file) == "-":
            return reviews(sys.stdin.buffer)
        with file.open("rb") as handle:
            return reviews(handle)
    except FileNotFoundError:
        raise ReviewlensError(
            f"{file} does not exist; pass a text file with one review per line, or - for stdin"
        ) from None
    except IsADirectoryError:
        raise ReviewlensError(f"{file} is a directory; pass a text file with one review per line") from None


@app.command()
def predict(
    run_dir: RunDirArgument,
    texts: Annotated[list[str] | None, typer.Argument(help="Reviews to score.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="One review per line; - reads stdin.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Say each review's label and its probability: `90.86% positive`. A blank review among several is not
    scored. --json gives each label's probability too."""
    from reviewlens import load
    from reviewlens.text import EMPTY_TEXT, is_blank, valid_text

    # Arguments carry bytes that were not UTF-8 as lone surrogates: read them as a file's would be, once,
    # so that --json echoes the text that was scored.
    given = [valid_text(text) for text in texts or []]
    reviews = given + (_read_reviews(file) if file is not None else [])
    lines = {len(given) + i: i + 1 for i in range(len(reviews) - len(given))}  # which answer is which line of --file
    if not reviews:
        raise ReviewlensError("no reviews to score; pass them as arguments or with --file PATH (- for stdin)")
    if len(reviews) == 1 and is_blank(reviews[0]):
        raise ReviewlensError('the review is empty; pass one, e.g. reviewlens predict RUN "A fine film"')
    run = load(run_dir)
    scored = [i for i, text in enumerate(reviews) if not is_blank(text)]
    answers = dict(zip(scored, run.answers([reviews[i] for i in scored]), strict=True))
    if as_json:  # as the service's batch answers: a blank review has no label or score, and says why
        _print_json(
            [
                ({"line": lines[i]} if i in lines else {})
                | (
                    {"text": text, **answers[i].to_json()}
                    if i in answers
                    else {"text": text, "label": None, "score": None, "probabilities": None, "error": EMPTY_TEXT}
                )
                for i, text in enumerate(reviews)
            ]
        )
        return
    for i, text in enumerate(reviews):
        answer = answers.get(i)
        shown = f"{answer.confidence:.2%} {answer.label}" if answer else f"{EMPTY_TEXT}, not scored"
        if i in lines:  # from --file: which line, and its start
            shown = f"line {lines[i]}: {shown}" + (f": {_start(text)}" if answer else "")
        out.print(shown, markup=False)


#: How much of a review ``predict --file`` shows beside its answer, to tell which line it is.
SHOWN_START = 40


def _start(text: str) -> str:
    """The review's first ``SHOWN_START`` characters on one line, "..." where it goes on."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN_START else flat[:SHOWN_START].rstrip() + "..."


class ScoreFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


class ScoreEngine(StrEnum):
    local = "local"
    ray = "ray"


class _ScoreProgress:
    """``reviewlens score``'s display on stderr: a bar over the input bytes, reviews/s, time left, bad rows."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("score", total=None, rows="0 reviews", rate="")
        self.started = 0.0
        self.rows = self.bad = 0

    def plan(self, todo: list[Any], done: list[Any], changed: list[Any]) -> None:
        import time

        def names(shards: list[Any]) -> str:
            return ", ".join(str(shard.path) for shard in shards[:3]) + (", ..." if len(shards) > 3 else "")

        if done:
            err.print(Text(f"skipped {len(done):,} shard(s) already scored in the output folder: {names(done)}",
                           style="dim"))  # fmt: skip
        if changed:
            err.print(Text(f"scoring {len(changed):,} shard(s) again: their input changed since they were scored "
                           f"(or was not recorded): {names(changed)}", style="dim"))  # fmt: skip
        self.progress.update(self.task, total=sum(shard.path.stat().st_size for shard in todo) or None)
        self.started = time.perf_counter()

    def advance(self, shard: Any, bytes_read: int, rows: int) -> None:
        import time

        self.rows += rows
        rate = self.rows / max(time.perf_counter() - self.started, 1e-9)
        reviews, shown_rate = f"{self.rows:,} reviews", f"{rate:,.0f} reviews/s"
        self.progress.update(self.task, advance=bytes_read, rows=reviews, rate=shown_rate)

    def bad_row(self, bad: Any) -> None:
        from reviewlens.scoring import REPORTED_BAD_ROWS

        self.bad += 1
        if self.bad <= REPORTED_BAD_ROWS:
            err.print(Text(f"bad row, skipped: {bad}", style="yellow"), soft_wrap=True)
        elif self.bad == REPORTED_BAD_ROWS + 1:
            err.print(Text("more bad rows are counted, not shown", style="yellow"))


@app.command()
def score(
    run_dir: RunDirArgument,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Files or directories of shards: .csv, .jsonl, .parquet, .txt (one review per line), or .gz of them.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the scored shards, one per input shard.")],
    text_column: Annotated[str, typer.Option("--text-column", help="The column (field) of the review text.")] = "text",
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column", help="A column (field) of ids to carry [default: id if there is one, else file and row]."
        ),
    ] = None,
    output_format: Annotated[
        ScoreFormat, typer.Option("--format", help="Output shards' format.")
    ] = ScoreFormat.parquet,
    engine: Annotated[ScoreEngine, typer.Option("--engine", help="Where shards are scored.")] = ScoreEngine.local,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Processes that predict, this one included (NumPy runs; Keras runs use every core in one); "
            "with --engine ray, the Ray actors that predict [default: the cores available here].",
            show_default=False,
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="With --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001, auto) "
            "[default: start a local Ray].",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop (exit 2) at the first bad row.")] = False,
    max_review_bytes: Annotated[
        int,
        typer.Option("--max-review-bytes", min=1, help="A longer review (UTF-8) is a bad row.", metavar="BYTES"),
    ] = MAX_REVIEW_BYTES,
    as_json: JsonOption = False,
) -> None:
    """Score files of reviews in bulk, streaming: a shard of id, score, label and run per input shard; a rerun
    skips the shards already done from the same input."""
    from rich.progress import TimeRemainingColumn

    from reviewlens.scoring import ScoreJob, default_workers
    from reviewlens.scoring import score as score_shards

    job = ScoreJob(run_dir, output, output_format.value, text_column, id_column, strict, max_review_bytes)
    with _Progress(
        TextColumn("scoring"), BarColumn(), TextColumn("{task.fields[rows]}, {task.fields[rate]}"),
        TimeRemainingColumn(), unit="bytes", every_s=5.0, transient=True,
    ) as progress:  # fmt: skip
        display = _ScoreProgress(progress)
        summary = score_shards(
            job,
            inputs,
            display,
            engine.value,
            workers=default_workers() if workers is None else workers,
            address=address,
            on_plan=display.plan,
        )
    if as_json:
        _print_json(summary.to_dict())
        return
    rate = f", {summary.rows / summary.seconds:,.0f} reviews/s" if summary.seconds > 0 and summary.rows else ""
    done = f"; {summary.shards_done_before} were done before" if summary.shards_done_before else ""
    if summary.shards_rescored:
        done += f"; {summary.shards_rescored} rescored because their input changed"
    out.print(
        f"scored {summary.rows:,} reviews of {summary.shards} shard(s) in {summary.seconds:.1f} s{rate}{done}; "
        f"{summary.rows_skipped:,} bad rows skipped -> {summary.out}",
        markup=False,
    )


@app.command()
def explain(
    run_dir: RunDirArgument,
    text: Annotated[str, typer.Argument(help="The review to explain.", show_default=False)],
    top: Annotated[int, typer.Option("--top", min=1, help="How many terms to show, largest effect first.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show the words and n-grams that moved a review's score: green pushed it positive, red negative (with more
    than two labels, towards or away from the review's label)."""
    from reviewlens import load

    if not text.strip():
        raise ReviewlensError('the text to explain is empty; pass a review, e.g. reviewlens explain RUN "A fine film"')
    run = load(run_dir)
    explanation = run.explain(text, top)
    if as_json:
        _print_json(
            {
                "text": text,
                "label": run.explained_label(explanation),
                "score": round(explanation.score, 6),
                "method": explanation.method,
                "terms": [{"term": t.term, "contribution": round(t.contribution, 6)} for t in explanation.terms],
                "words": explanation.words,
                "words_considered": explanation.considered,
            }
        )
        return
    how = "each term taken out of the model's input" if explanation.method == "exact" else "each word removed"
    capped = ""
    if explanation.capped:  # occlusion considers the first words of a long text: say how many
        capped = f" (the first {explanation.considered:,} of its {explanation.words:,} distinct words)"
    err.print(f"[dim]{explanation.method}: the score minus the score with {how}{capped}[/dim]")
    label = run.explained_label(explanation)
    out.print(_shown(run, explanation.score) if explanation.label is None else f"{explanation.score:.2%} {label}",
              markup=False)  # fmt: skip
    if not explanation.terms:
        out.print("no term of the text is known to the model", markup=False)
    for term in explanation.terms:
        style = "green" if term.contribution > 0 else "red" if term.contribution < 0 else "dim"
        out.print(Text.assemble((f"{term.contribution:+.4f}", style), "  ", (term.term, style)))


@app.command()
def compare(
    recipes: Annotated[
        str, typer.Option("--recipes", help="Comma-separated recipe names, e.g. bow-unigram,bow-bigram,conv1d.")
    ],
    data: DataOption = None,
    runs: Annotated[
        Path, typer.Option("--runs", help="Where runs are reused or trained, and comparison.md/.png written.")
    ] = Path("runs"),
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Epochs for every recipe [default: each recipe's].")
    ] = None,
    labels: LabelsOption = LabelChoice.sentiment,
    as_json: JsonOption = False,
) -> None:
    """Compare recipes on one dataset: accuracy, training time, prediction speed, size (reusing matching runs);
    with more than two labels also each run's macro-F1 and every label's F1."""
    from reviewlens.compare import compare as compare_recipes
    from reviewlens.compare import label_rows, table_rows

    with _epoch_progress(True, epochs or 1) as show:
        comparison = compare_recipes(
            recipes, data, runs, epochs=epochs, log=lambda message: err.print(Text(message, style="dim")),
            labels=labels.value,
            on_epoch=lambda name, epoch, total, logs: show(epoch, total, logs, f"train {name}") if show else None,
        )  # fmt: skip
    if as_json:
        _print_json(comparison.to_dict())
        return
    table = Table(title=f"recipes on {comparison.data}")
    for i, column in enumerate(("recipe", "val acc", "test acc", "train s", "reviews/s", "MB")):
        table.add_column(column, justify="right" if i else "left", no_wrap=True)
    for cells in table_rows(comparison.rows):
        table.add_row(*(Text(cell) for cell in cells[:-1]))
    out.print(table)
    if len(comparison.labels) > 2:
        per_label = Table(title="test macro-F1 and F1 per label")
        for i, column in enumerate(("recipe", "macro-F1", *comparison.labels)):
            per_label.add_column(column, justify="right" if i else "left", no_wrap=True)
        for cells in label_rows(comparison.rows, comparison.labels):
            per_label.add_row(*(Text(cell) for cell in cells))
        out.print(per_label)
    for row in comparison.rows:
        out.print(f"{row.recipe}: {row.run_dir} ({'reused' if row.reused else 'trained now'})", markup=False)
    out.print(f"written: {comparison.markdown}, {comparison.chart}", markup=False)


@app.command()
def tune(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="A recipe that declares a search space.")],
    budget: Annotated[
        str, typer.Option("--budget", help="Time for the whole study, e.g. 90s, 10m, 1h.", metavar="DURATION")
    ],
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="At most this many trials in the study [default: no limit].")
    ] = None,
    data: DataOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The study's folder; the same command again continues it [default: runs/tune-RECIPE]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the sampler and every trial's training.")] = 1337,
    encoder: Annotated[
        Path | None,
        typer.Option("--encoder", help="pretrained-* recipes: the encoder every trial fine-tunes.", metavar="DIR"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search a recipe's settings on validation within a time budget; write the best run and a table of every trial."""
    from reviewlens.tuning import TrialRow, parse_budget
    from reviewlens.tuning import tune as tune_recipe

    seconds = parse_budget(budget)  # a malformed budget fails here, before any work
    progress = _Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[logs]}"), TimeElapsedColumn(), unit="epoch", transient=True,
    )  # fmt: skip
    task = progress.add_task("", total=None, logs="")

    def on_epoch(trial: int, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        progress.start()  # from the first epoch: an error before it is one line, nothing more
        shown = f"val_accuracy {logs['val_accuracy']:.4f}"
        progress.update(task, completed=epoch, total=epochs, logs=shown, description=f"tune {recipe} trial {trial}")

    def on_trial(row: TrialRow) -> None:
        progress.reset(task, total=None)  # the next trial starts now: its rate and time left count from here
        err.print(Text(f"trial {row.number}: {_trial_summary(row)}", style="dim"), soft_wrap=True)

    try:
        result = tune_recipe(
            recipe, data, out_dir, budget=seconds, trials=trials, seed=seed, on_epoch=on_epoch, on_trial=on_trial,
            log=lambda message: err.print(Text(message, style="dim"), soft_wrap=True),
            options=None if encoder is None else {"encoder": encoder},
        )  # fmt: skip
    finally:
        if progress.live.is_started:
            progress.stop()
    if as_json:
        _print_json(result.to_json())
        return
    table = Table(title=f"{len(result.trials)} trials of {result.recipe} in {result.out} (* chosen)")
    for column in ("trial", "state", "val acc", "epochs", "s"):  # short: the settings fold, never these
        table.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    table.add_column("settings", overflow="fold")
    for row in result.trials:
        settings = " ".join(f"{name}={_setting(value)}" for name, value in row.params.items())
        table.add_row(
            f"{row.number}{' *' if row.number == result.best.number else ''}",
            row.state,
            f"{row.val_accuracy:.2%}" if row.val_accuracy is not None else "-",
            str(row.epochs),
            f"{row.seconds:.0f}" if row.seconds is not None else "-",
            Text(settings + (" (the recipe's own)" if row.baseline else "")),
        )
    out.print(table)
    best, baseline = result.best, result.baseline
    own = f" (the recipe's own settings: {baseline.val_accuracy:.2%})" if baseline and baseline.val_accuracy else ""
    out.print(f"best: trial {best.number}, validation accuracy {best.val_accuracy:.2%}{own}", markup=False)
    if result.test_accuracy is not None:
        out.print(f"test accuracy of the chosen run, read once after choosing: {result.test_accuracy:.2%}")
    out.print(f"best run: {result.out / 'best'}; every trial: {result.out / 'trials.csv'}", markup=False)


def _trial_summary(row: Any) -> str:
    """A finished trial in a few words: "complete, validation 89.12% in 31 s", "pruned after epoch 2"."""
    if row.state == "complete":
        return f"complete, validation {row.val_accuracy:.2%} in {row.seconds:.0f} s"
    return f"{row.state} after epoch {row.epochs}"


def _setting(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command("runs")
def list_runs(
    directory: Annotated[
        Path, typer.Argument(help="The folder of run directories [default: runs, where `train` writes].")
    ] = Path("runs"),
    clean: Annotated[
        bool, typer.Option("--clean", help="Remove what killed runs left (never a live one, never a finished run).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the runs in a folder, and the runs killed before they finished (`train --resume` continues one)."""
    from reviewlens.checkpoints import clean as clean_staged
    from reviewlens.checkpoints import staged
    from reviewlens.runs import runs_in

    if not directory.is_dir():
        raise ReviewlensError(f"{directory} is not a folder of runs; pass the folder your runs were written to")
    removed = clean_staged(directory) if clean else []
    (finished, damaged), killed = runs_in(directory), list(staged(directory))
    if as_json:
        _print_json(
            {
                "runs": [
                    {
                        "run_dir": str(path),
                        "recipe": meta.recipe,
                        "val_accuracy": meta.val_accuracy,
                        "test_accuracy": meta.test_accuracy,
                        "data": meta.data.get("path"),
                        "data_origin": meta.data.get("origin"),
                        "created": meta.created,
                    }
                    for path, meta in finished
                ],
                "damaged": [{"run_dir": str(path), "why": why} for path, why in damaged],
                "killed": [k.to_json() for k in killed],
                "removed": [k.to_json() for k in removed],
            }
        )
        return
    table = Table(title=f"runs in {directory}")
    for column in ("run", "recipe"):  # names a user types: never cut, in a terminal or a pipe
        widest = max((len(path.name if column == "run" else meta.recipe) for path, meta in finished), default=0)
        table.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
    for column in ("val acc", "test acc"):
        table.add_column(column, justify="right", no_wrap=True)
    for column in ("data", "created"):
        table.add_column(column, overflow="fold")
    for path, meta in finished:
        accuracies = [f"{a:.2%}" if a is not None else "-" for a in (meta.val_accuracy, meta.test_accuracy)]
        created = (meta.created or "-").replace("T", " ").removesuffix("+00:00")  # UTC, as train writes it
        table.add_row(Text(path.name), Text(meta.recipe), *accuracies, Text(meta.data_shown()), Text(created))
    out.print(table)
    for path, why in damaged:
        out.print(f"damaged run: {path} ({why}); train it again or remove it", markup=False)
    for k in removed:
        out.print(f"removed {k.path} (a killed run of {k.recipe or 'unknown recipe'}, {k.epoch} epoch(s) finished)",
                  markup=False)  # fmt: skip
    for k in killed:
        epochs = f"{k.epoch}/{k.epochs}" if k.epochs else str(k.epoch)
        state = f"pid {k.pid} is training in it" if k.live else f"pid {k.pid} is gone"
        out.print(
            f"killed run: {k.run_dir} ({k.recipe or 'unknown recipe'}, epoch {epochs} finished, {state}) in {k.path}",
            markup=False,
        )
    dead = [k for k in killed if not k.live]
    if dead:
        out.print(
            f"continue one with `reviewlens train --out RUN --resume` and the same settings, or remove them with "
            f"`reviewlens runs {directory} --clean`",
            markup=False,
        )


@app.command()
def quickstart(as_json: JsonOption = False) -> None:
    """Train the default recipe on the resolved data, evaluate it, and score two example reviews."""
    from reviewlens import load
    from reviewlens.recipes import DEFAULT_RECIPE

    result = _train(DEFAULT_RECIPE, None, None, None, 1337, quiet=as_json)
    report = _evaluate(result.run_dir, None, quiet=True)
    run = load(result.run_dir)
    scores = run.predict(EXAMPLES).tolist()
    if as_json:
        examples = [
            {"text": t, "label": run.label(p), "score": round(p, 6)} for t, p in zip(EXAMPLES, scores, strict=True)
        ]
        _print_json(
            {
                "run_dir": str(result.run_dir),
                "metadata": result.metadata.to_json(),
                "evaluation": report,
                "examples": examples,
            }
        )
        return
    out.print(f"trained {DEFAULT_RECIPE} in {result.metadata.timings['total_s']:.1f} s -> {result.run_dir}")
    _print_metrics(f"{DEFAULT_RECIPE} on {report['data']} (test)", report["test"])
    for text, probability in zip(EXAMPLES, scores, strict=True):
        out.print(f"{_shown(run, probability)}: {text}", markup=False)
    command = _command()
    out.print(f'next: {command} predict {result.run_dir} "your review"', markup=False)
    if command != "reviewlens":
        out.print(f"(or `source {Path(command).parent / 'activate'}` first, then type `reviewlens`)", markup=False)


def _command() -> str:
    """How the user reaches this command from their shell: ``reviewlens`` where it is on their PATH, else its path.

    ``make run`` installs into ``.venv``, which a fresh shell does not have on its PATH, so "next: reviewlens ..."
    would be "command not found"; the path relative to the working directory is what they can paste.
    """
    installed = Path(sys.executable).parent / "reviewlens"
    found = shutil.which("reviewlens")
    if found is not None and Path(found).resolve() == installed.resolve():
        return "reviewlens"
    try:
        return str(installed.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


@data_app.command("download")
def data_download(
    cache: Annotated[
        Path | None, typer.Option("--cache-dir", help="[default: $REVIEWLENS_CACHE or ~/.cache/reviewlens]")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", hidden=True)] = None,
) -> None:
    """Download the aclImdb archive (84 MB) into the cache and verify its checksum."""
    from reviewlens.data.download import ACLIMDB_FILENAME, ACLIMDB_SIZE, ACLIMDB_URL, cache_dir, download

    destination = cache_dir(cache) / ACLIMDB_FILENAME
    with Progress(
        TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task("download", total=ACLIMDB_SIZE, visible=False)  # shown once bytes arrive
        path = download(
            destination,
            url=url or ACLIMDB_URL,
            progress=lambda done, total: progress.update(task, completed=done, total=total, visible=True),
        )
    out.print(f"{path} (verified)")


@data_app.command("info")
def data_info(
    path: Annotated[
        Path | None, typer.Argument(help="Dataset [default: resolved as for --data].", show_default=False)
    ] = None,
    labels: LabelsOption = LabelChoice.sentiment,
    max_review_bytes: MaxReviewBytesOption = MAX_REVIEW_BYTES,
    as_json: JsonOption = False,
) -> None:
    """Reviews per split and label, lengths, duplicates, files that did not decode, were cut or skipped."""
    from reviewlens.data import describe, resolve

    resolved = resolve(path, max_review_bytes=max_review_bytes, labels=labels.value)
    err.print(f"[dim]{resolved.describe()}[/dim]")
    info = describe(resolved.dataset)
    for warning in info.warnings:
        err.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    if as_json:
        _print_json(info.to_dict())
        return
    table = Table(title=f"{info.path}")
    for column in ("split", *info.labels, "mean words", "median", "p95", "duplicates within"):
        table.add_column(column, justify="right", overflow="fold")
    for split, counts in info.reviews.items():
        words = info.words[split]
        table.add_row(
            split, *(f"{counts[label]:,}" for label in info.labels), f"{words['mean']:.1f}",
            f"{words['median']:.0f}", f"{words['p95']:.0f}", f"{info.duplicates_within[split]:,}",
        )  # fmt: skip
    out.print(table)
    out.print("duplicates across splits: " + ", ".join(f"{k} {v:,}" for k, v in info.duplicates_across.items()))
    out.print(f"empty reviews: {info.empty:,}")
    out.print(f"files that did not decode as UTF-8 (read with replacement): {len(info.undecodable):,}")
    for id in info.undecodable[:10]:
        out.print(f"  {id}", markup=False)
    out.print(f"reviews cut at {max_review_bytes:,} bytes (--max-review-bytes): {len(info.truncated):,}")
    for id in info.truncated[:10]:
        out.print(f"  {id}", markup=False)
    out.print(f"files skipped, not readable reviews: {len(info.skipped):,}")
    for id, why in list(info.skipped.items())[:10]:
        out.print(f"  {id}: {why}", markup=False)


@app.command()
def serve(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories to serve; the first is the default model.", show_default=False)
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; 0.0.0.0 opens it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Most texts in one model call.")] = 256,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", min=0, help="How long a model call waits for more requests to join.")
    ] = 0.0,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=0,
            help="Helper processes that share large model calls (256+ texts) with each worker. "
            "Default: 1 for a single worker on a machine with several cores, else 0.",
            show_default=False,
        ),
    ] = None,
    cache_size: Annotated[
        int, typer.Option("--cache-size", min=0, help="Predictions cached per model; 0: none.")
    ] = 10000,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1, help="Largest request body.")] = 1 << 20,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="REVIEWLENS_API_KEY",
            help="Require `Authorization: Bearer KEY` on every endpoint but /health (the page at / asks for it).",
            show_envvar=True,
        ),
    ] = None,
    cors_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="An origin whose pages may call the API, e.g. https://app.example; repeat for more. None by default.",
            metavar="ORIGIN",
        ),
    ] = None,
    log_texts: Annotated[
        bool, typer.Option("--log-texts", help="Let error logs quote review text (off: messages are withheld).")
    ] = False,
    header_timeout: Annotated[
        float,
        typer.Option("--header-timeout", min=0.001, help="Seconds a request may take to send its headers."),
    ] = 5.0,
    body_timeout: Annotated[
        float,
        typer.Option("--body-timeout", min=0.001, help="Seconds a request may take to send its body (then 408)."),
    ] = 10.0,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", min=1, help="Open connections per worker; requests beyond get 503."),
    ] = 256,
    grace_period: Annotated[
        float,
        typer.Option("--grace-period", min=0, help="Seconds SIGTERM waits for the requests in flight (then 503)."),
    ] = 30.0,
) -> None:
    """Serve runs over HTTP: a JSON prediction API, Prometheus metrics, and a page at / (no TensorFlow needed)."""
    from reviewlens.serving.config import ServeConfig, default_processes
    from reviewlens.serving.server import serve as run_server

    if api_key is not None and not api_key.strip():
        raise ReviewlensError("--api-key is empty; pass a key, e.g. one from: python -c 'import secrets; "
                              "print(secrets.token_urlsafe())'")  # fmt: skip

    run_server(
        ServeConfig(
            run_dirs=[str(run_dir) for run_dir in run_dirs],
            host=host,
            port=port,
            workers=workers,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            processes=default_processes(workers) if processes is None else processes,
            cache_size=cache_size,
            max_body_bytes=max_body_bytes,
            api_key=api_key,
            cors_origins=cors_origins or [],
            log_texts=log_texts,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            grace_period=grace_period,
        )
    )


class Objective(StrEnum):
    lm = "lm"
    mlm = "mlm"


class Direction(StrEnum):
    forward = "forward"
    backward = "backward"


@app.command()
def pretrain(
    out_dir: Annotated[Path, typer.Option("--out", help="Encoder directory to write.", metavar="DIR")],
    data: DataOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the pretraining text.")] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the killed pretraining of this --out from its last checkpoint.")
    ] = False,
    require_unlabeled: Annotated[
        bool,
        typer.Option("--require-unlabeled", help="Refuse data without unlabeled reviews instead of using train only."),
    ] = False,
    start: Annotated[
        Path | None,
        typer.Option(
            "--from", help="Continue pretraining this encoder (its vocabulary and sizes) on --data.", metavar="DIR"
        ),
    ] = None,
    objective: Annotated[
        Objective | None,
        typer.Option("--objective", help="lm: LSTM next-token model; mlm: Transformer, masked tokens. [default: lm]"),
    ] = None,
    direction: Annotated[
        Direction | None,
        typer.Option(
            "--direction",
            help="lm: read reviews forward or from their end (ULMFiT's backward model). [default: forward]",
        ),
    ] = None,
    vocabulary: Annotated[
        int | None, typer.Option("--vocabulary", min=3, help="Vocabulary size (with padding and OOV). [default: 20000]")
    ] = None,
    embedding: Annotated[int | None, typer.Option("--embedding", min=1, help="Embedding size. [default: 128]")] = None,
    units: Annotated[int | None, typer.Option("--units", min=1, help="lm: LSTM units. [default: 256]")] = None,
    layers: Annotated[
        int | None, typer.Option("--layers", min=1, help="LSTM or Transformer layers. [default: 1]")
    ] = None,
    heads: Annotated[int | None, typer.Option("--heads", min=1, help="mlm: attention heads. [default: 2]")] = None,
    dense: Annotated[int | None, typer.Option("--dense", min=1, help="mlm: feed-forward width. [default: 256]")] = None,
    length: Annotated[
        int | None, typer.Option("--length", min=2, help="Tokens per training window. [default: 128]")
    ] = None,
    review_tokens: Annotated[
        int | None, typer.Option("--review-tokens", min=2, help="Keep only each review's first N tokens.", metavar="N")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Windows per step. [default: 64]")
    ] = None,
    sampled: Annotated[
        int | None, typer.Option("--sampled", min=1, help="Negatives of the sampled softmax. [default: 1024]")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", min=0.0, help="Adam's step size. [default: 0.001]")
    ] = None,
    checkpoint_steps: Annotated[
        int, typer.Option("--checkpoint-steps", min=1, help="Save a checkpoint every N steps.")
    ] = 200,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", min=0.0, help="Stop pretraining after this many minutes.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 1337,
    as_json: JsonOption = False,
) -> None:
    """Pretrain an encoder on the train split and the unlabeled reviews (never validation or test), for
    `train --recipe pretrained-vat --encoder DIR`; `--from DIR` continues one on other reviews (your own)."""
    from reviewlens.pretraining import Sizes, continued_sizes
    from reviewlens.pretraining import pretrain as run_pretraining

    given: dict[str, Any] = {"objective": None if objective is None else objective.value, "vocabulary": vocabulary,
             "embedding": embedding, "units": units, "layers": layers, "heads": heads, "dense": dense, "length": length,
             "review_tokens": review_tokens, "batch_size": batch_size, "sampled": sampled,
             "learning_rate": learning_rate, "direction": direction and direction.value}  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    sizes = Sizes(**given) if start is None else continued_sizes(start, given)
    with _Progress(
        TextColumn("pretraining"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), unit="step", every_s=5.0, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("pretrain", total=None, loss="")

        def on_step(step: int, steps: int, loss: float) -> None:
            progress.update(task, completed=step, total=steps, loss=f"loss {loss:.4f}")

        metadata = run_pretraining(
            data, out_dir, sizes=sizes, epochs=epochs, seed=seed, resume=resume, require_unlabeled=require_unlabeled,
            checkpoint_steps=checkpoint_steps, time_budget_s=None if max_minutes is None else max_minutes * 60,
            start=start, log=lambda message: progress.console.print(Text(message, style="dim"), soft_wrap=True),
            on_step=on_step,
        )  # fmt: skip
    if as_json:
        _print_json(metadata)
        return
    out.print(
        f"encoder: {out_dir} ({metadata['objective']}, {metadata['tokens_seen']:,} tokens in "
        f"{metadata['seconds']:.0f} s, {metadata['tokens_per_second']:,.0f} tokens/s, validation perplexity "
        f"{metadata['val_perplexity'][-1]:.1f})"
    )


@embeddings_app.command("train")
def embeddings_train(
    out_file: Annotated[Path, typer.Option("--out", help="Word-vector file to write (GloVe text format).")],
    data: DataOption = None,
    dim: Annotated[int, typer.Option("--dim", min=1, help="Vector size.")] = 100,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the reviews.")] = 5,
    min_count: Annotated[int, typer.Option("--min-count", min=1, help="Ignore rarer words.")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 1337,
) -> None:
    """Learn word vectors (word2vec) from the train split and the unlabeled reviews, for bilstm-pretrained."""
    from reviewlens.data import resolve
    from reviewlens.embeddings import train_vectors

    resolved = resolve(data)
    err.print(f"[dim]{resolved.describe()}; learning {dim}-dimensional vectors from train and unsup[/dim]")
    path, words = train_vectors(resolved.dataset, out_file, dim=dim, epochs=epochs, min_count=min_count, seed=seed)
    out.print(f"{path}: {words:,} words, {dim} dimensions")


def main() -> None:
    """Entry point: a ``ReviewlensError`` becomes one line on stderr and exit code 2; Ctrl-C and SIGTERM one
    line saying what stopped, exit codes 130 and 143. TensorFlow's start-up lines are kept off stderr."""
    from reviewlens.processes import Interrupted, handle_signals, quiet_tensorflow

    if not os.environ.get("REVIEWLENS_VERBOSE"):
        quiet_tensorflow()
    handle_signals()
    try:
        app()  # standalone: usage errors print click's message and exit with 2
    except ReviewlensError as error:
        sys.stderr.write(f"error: {error}\n")  # raw: one line, never wrapped
        sys.exit(2)
    except Interrupted as interrupt:  # runs are written whole or not at all; train says above what it kept
        command = " ".join(["reviewlens", *sys.argv[1:2]])
        sys.stderr.write(f"interrupted by {interrupt.signal_name}: {command} stopped\n")
        sys.exit(interrupt.exit_code)


if __name__ == "__main__":
    main()
