"""Compare recipes on one dataset: reuse or train a run of each, then tabulate accuracy, speed and size.

``compare`` looks in a runs directory for the newest complete run of each recipe trained on the same
data (its fingerprint) for the same number of epochs, trains one there when none exists, and writes
``comparison.md`` and ``comparison.png`` beside the runs. Runs of more than two labels (``labels="rating"``, or a
file of more) add each run's test macro-F1 and every label's test F1 to the report; runs compared must hold the
same labels.
"""

from __future__ import annotations

import functools
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reviewlens.data import LabelKind, Resolved, fingerprint, resolve, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.runs import METADATA_FILE, RunMetadata, load, read_metadata

MARKDOWN_FILE = "comparison.md"
CHART_FILE = "comparison.png"
DEFAULT_RUNS = Path("runs")
#: Reviews of the test split that the prediction speed is timed on.
TIMED_REVIEWS = 5000


@dataclass(frozen=True)
class Row:
    """One recipe's line of the comparison."""

    recipe: str
    run_dir: str
    reused: bool  # an existing run was found; False when it was trained for this comparison
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float | None  # the run's own training time (metadata timings total_s)
    reviews_per_second: float  # Run.predict on up to TIMED_REVIEWS test reviews, in one call
    size_mb: float  # every file of the run directory, 10^6 bytes
    macro_f1: float | None = None  # the test split's
    per_label_f1: dict[str, float] | None = None  # each label's F1 on the test split, in the run's label order


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]
    data: str
    fingerprint: str
    runs_dir: Path
    command: str
    markdown: Path
    chart: Path
    labels: tuple[str, ...] = ("negative", "positive")  # every compared run's

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "fingerprint": self.fingerprint,
            "runs_dir": str(self.runs_dir),
            "command": self.command,
            "markdown": str(self.markdown),
            "chart": str(self.chart),
            "labels": list(self.labels),
            "recipes": [asdict(row) for row in self.rows],
        }


def parse_recipes(names: str | Sequence[str]) -> list[str]:
    """Recipe names from ``a,b,c`` (or a list), each once, in order; every name checked before any work."""
    from reviewlens.recipes import get_recipe

    items = names.split(",") if isinstance(names, str) else list(names)
    chosen = list(dict.fromkeys(name.strip() for name in items if name.strip()))
    if not chosen:
        raise ReviewlensError("no recipes to compare; pass --recipes a,b,c (see `reviewlens recipes`)")
    for name in chosen:
        get_recipe(name)  # an unknown name is a ReviewlensError with the closest names
    return chosen


def data_fingerprint(resolved: Resolved) -> tuple[str, list[str]]:
    """The fingerprint a trainer records for this data (train, validation, test digests) and the test texts."""
    splits = resolved.dataset.read_splits("train", "validation", "test")  # one pass over the source
    digests = [split_digest(*splits[name]) for name in ("train", "validation", "test")]
    return fingerprint(*digests), splits["test"][0]


def find_run(runs_dir: Path, recipe: str, data: str, epochs: int, damaged: list[str] | None = None) -> Path | None:
    """The newest complete, unaltered run of ``recipe`` in ``runs_dir`` with this data fingerprint and epochs.

    Hidden directories (a training in progress, or a killed one, is in ``.NAME.partial``) are passed over, and so
    are directories that do not load as runs: why each of those does not goes to ``damaged``, so that a retraining
    in their place is said. Newest means the latest ``created`` time, then the name.
    """
    if not runs_dir.is_dir():
        return None
    found: list[tuple[str, str, Path]] = []
    for path in runs_dir.iterdir():
        if path.name.startswith(".") or not (path / METADATA_FILE).is_file():
            continue
        try:
            metadata = read_metadata(path)
        except ReviewlensError as error:
            if damaged is not None:
                damaged.append(str(error))
            continue
        if _matches(metadata, recipe, data, epochs):
            found.append((metadata.created or "", path.name, path))
    return max(found)[2] if found else None


def _matches(metadata: RunMetadata, recipe: str, data: str, epochs: int) -> bool:
    return (
        metadata.recipe == recipe
        and metadata.data.get("fingerprint") == data
        and metadata.hyperparameters.get("epochs") == epochs
    )


def run_size(run_dir: Path) -> int:
    """Bytes of every file under ``run_dir``."""
    return sum(path.stat().st_size for path in run_dir.rglob("*") if path.is_file())


def prediction_speed(run_dir: Path, texts: Sequence[str]) -> float:
    """Reviews per second of ``Run.predict_proba`` on ``texts`` in one call, after a small warm-up call."""
    if not texts:
        raise ReviewlensError("the test split holds no reviews to time predictions on")
    run = load(run_dir)
    run.predict_proba(list(texts[:32]))  # lazy set-up (a Keras import, a first graph trace) is not prediction
    started = time.perf_counter()
    run.predict_proba(list(texts))
    return len(texts) / max(time.perf_counter() - started, 1e-9)


def command_line(
    recipes: Sequence[str], data: Path | None, runs_dir: Path, epochs: int | None, labels: LabelKind = "sentiment"
) -> str:
    """The ``reviewlens compare`` command that repeats this comparison."""
    words = ["reviewlens", "compare", "--recipes", ",".join(recipes)]
    if data is not None:
        words += ["--data", str(data)]
    if labels != "sentiment":
        words += ["--labels", labels]
    words += ["--runs", str(runs_dir)]
    if epochs is not None:
        words += ["--epochs", str(epochs)]
    return shlex.join(words)


def compare(
    recipes: str | Sequence[str],
    data: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = DEFAULT_RUNS,
    *,
    epochs: int | None = None,
    log: Callable[[str], None] = lambda message: None,
    labels: LabelKind = "sentiment",
    on_epoch: Callable[[str, int, int, dict[str, float]], None] | None = None,
) -> Comparison:
    """Reuse or train a run of each recipe on ``data`` in ``runs_dir``; write the Markdown table and the chart.

    A run is reused when it is the same recipe, trained on data with the same fingerprint for the same
    epochs (``epochs``, else the recipe's). ``data`` is resolved as the CLI resolves ``--data``, its reviews labelled
    by ``labels`` (aclImdb's ``"rating"``: its 1-10 rating); every run compared must hold the same labels.
    """
    from reviewlens.recipes import get_recipe
    from reviewlens.training import default_run_dir, train

    names = parse_recipes(recipes)
    if epochs is not None and epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    root = Path(runs_dir)
    if root.exists() and not root.is_dir():
        raise ReviewlensError(f"{root} is not a directory; pass --runs a directory for the runs and the comparison")
    data_path = None if data is None else Path(data)
    resolved = resolve(data_path, labels=labels)
    log(f"{resolved.describe()}; fingerprinting its splits")
    digest, test_texts = data_fingerprint(resolved)
    timed = test_texts[:TIMED_REVIEWS]
    rows = []
    label_names: tuple[str, ...] | None = None
    first_run: Path | None = None
    for name in names:
        wanted = epochs or get_recipe(name).epochs
        damaged: list[str] = []
        run_dir = find_run(root, name, digest, wanted, damaged)
        reused = run_dir is not None
        if name == names[0]:  # said once: they are passed over for every recipe
            for problem in damaged:
                log(f"passed over a damaged run ({problem})")
        if run_dir is None:
            log(f"{name}: no run on this data with {wanted} epochs in {root}; training one")
            each_epoch = None if on_epoch is None else functools.partial(on_epoch, name)  # (recipe, epoch, ...)
            if each_epoch is not None:
                each_epoch(0, wanted, {})  # its start: the rate and time left count from here
            trained = train(name, resolved, default_run_dir(name, root), epochs=wanted, log=log, on_epoch=each_epoch)
            run_dir = trained.run_dir
        else:
            log(f"{name}: reusing {run_dir}")
        metadata = read_metadata(run_dir)
        if label_names is None:
            label_names, first_run = tuple(metadata.labels), run_dir
        elif tuple(metadata.labels) != label_names:
            raise ReviewlensError(
                f"{run_dir} holds the labels ({', '.join(metadata.labels)}), {first_run} ({', '.join(label_names)}): "
                "runs of different labels cannot be compared; compare each set of labels on its own"
            )
        test = metadata.metrics.get("test", {})
        per_label = test.get("per_label") or {}
        log(f"{name}: timing predictions on {len(timed):,} test reviews")
        rows.append(
            Row(
                recipe=name,
                run_dir=str(run_dir),
                reused=reused,
                val_accuracy=metadata.val_accuracy,
                test_accuracy=metadata.test_accuracy,
                train_seconds=metadata.timings.get("total_s"),
                reviews_per_second=prediction_speed(run_dir, timed),
                size_mb=run_size(run_dir) / 1e6,
                macro_f1=test.get("macro_f1"),
                per_label_f1={label: per_label[label]["f1"] for label in metadata.labels if label in per_label} or None,
            )
        )
    command = command_line(names, data_path, root, epochs, labels)
    comparison = Comparison(
        rows, str(resolved.dataset.path), digest, root, command, root / MARKDOWN_FILE, root / CHART_FILE,
        label_names or resolved.dataset.label_names,
    )  # fmt: skip
    _write_atomically(comparison.markdown, markdown(comparison).encode("utf-8"))
    plot_comparison(rows, comparison.chart, title=f"Test accuracy on {resolved.dataset.path.name}")
    return comparison


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    """The comparison as text cells: recipe, validation and test accuracy, training s, reviews/s, MB, run."""
    return [
        [
            row.recipe,
            _percent(row.val_accuracy),
            _percent(row.test_accuracy),
            "-" if row.train_seconds is None else f"{row.train_seconds:.1f}",
            f"{row.reviews_per_second:,.0f}",
            f"{row.size_mb:.2f}",
            Path(row.run_dir).name + ("" if row.reused else " (new)"),
        ]
        for row in rows
    ]


COLUMNS = ("recipe", "validation accuracy", "test accuracy", "training s", "reviews/s", "size MB", "run")


def markdown(comparison: Comparison) -> str:
    """``comparison.md``: the command, the data, and the table."""
    lines = [
        "# reviewlens comparison",
        "",
        "```sh",
        comparison.command,
        "```",
        "",
        f"Data: `{comparison.data}` (fingerprint `{comparison.fingerprint}`); written "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}. Prediction speed: `Run.predict` on up to "
        f"{TIMED_REVIEWS:,} test reviews in one call; size: every file of the run.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * 5 + ["---"]) + "|",
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in table_rows(comparison.rows)
    ]
    if len(comparison.labels) > 2:  # more labels: how each is learned
        lines += ["", f"Test macro-F1 and each label's test F1 ({len(comparison.labels)} labels):", ""]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in ["recipe", "macro-F1", *comparison.labels]) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(comparison.labels) + 1)) + "|",
        ]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
            for cells in label_rows(comparison.rows, comparison.labels)
        ]
    return "\n".join(lines) + "\n"


def label_rows(rows: Sequence[Row], labels: Sequence[str]) -> list[list[str]]:
    """Each run's test macro-F1 and every label's test F1, as text cells (for more than two labels)."""
    return [
        [
            row.recipe,
            "-" if row.macro_f1 is None else f"{row.macro_f1:.3f}",
            *("-" if (row.per_label_f1 or {}).get(label) is None else f"{(row.per_label_f1 or {})[label]:.3f}"
              for label in labels),
        ]
        for row in rows
    ]  # fmt: skip


def plot_comparison(rows: Sequence[Row], path: Path, title: str = "") -> Path:
    """``comparison.png``: a bar of test accuracy per recipe, its value written above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row.recipe for row in rows]
    values = [row.test_accuracy or 0.0 for row in rows]
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4), constrained_layout=True)
    bars = axis.bar(names, values, color="b", alpha=0.7, edgecolor="k")
    axis.bar_label(bars, labels=[f"{value:.1%}" for value in values], padding=2)
    axis.set_ylim(max(0.0, min(values) - 0.1), 1.0)
    axis.set_ylabel("Test accuracy")
    axis.set_title(title or "Test accuracy")
    axis.tick_params(axis="x", rotation=20 if len(rows) > 4 else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        figure.savefig(partial, dpi=100, format="png")
        os.replace(partial, path)
    finally:
        plt.close(figure)
        partial.unlink(missing_ok=True)
    return path


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(content)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
