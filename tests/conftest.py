"""Fixtures that make tiny datasets on the fly, in every layout reviewlens reads."""

from __future__ import annotations

import csv
import json
import os
import random
import tarfile
import time
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FULL_ARCHIVE = SHARED_DATA / "aclImdb-labeled.tar.gz"

POSITIVE = ["wonderful", "superb", "moving", "brilliant", "delightful", "masterpiece", "charming", "gripping"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "clumsy", "tedious", "dreadful", "pointless"]
NEUTRAL = ["the", "film", "plot", "actor", "scene", "movie", "story", "camera", "music", "ending", "director", "cast"]
# Characters that break a naive vocabulary file: line separators Python splits on but
# TextVectorization keeps inside tokens, plus a capital it does not lowercase.
TRAP = ["caf\u00c9", "x\u0085y", "a\u2028b", "c\u2029d", "e\x1cf", "g\x0bh", "i\x0cj", "k\u00a0l", "m\x1en"]


def make_review(rng: random.Random, label: int) -> str:
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(8, 30))]
    cue = POSITIVE if label else NEGATIVE
    for _ in range(rng.randint(2, 4)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(TRAP))
    text = " ".join(words).capitalize() + "."
    return text.replace(" the ", " the <br /><br />", 1) if rng.random() < 0.2 else text


def reviews(per_class: dict[str, int], seed: int = 7) -> dict[tuple[str, str], list[str]]:
    rng = random.Random(seed)
    return {
        (split, category): [make_review(rng, int(category == "pos")) for _ in range(n)]
        for split, n in per_class.items()
        for category in ("pos", "neg")
    }


def write_aclimdb(root: Path, per_class: dict[str, int] | None = None, bad_utf8: bool = True) -> Path:
    """An aclImdb tree under ``root/aclImdb``; one train file is not UTF-8 when ``bad_utf8``."""
    data = reviews(per_class or {"train": 60, "test": 40})
    base = root / "aclImdb"
    for (split, category), texts in data.items():
        folder = base / split / category
        folder.mkdir(parents=True)
        for i, text in enumerate(texts):
            (folder / f"{i}_{8 if category == 'pos' else 2}.txt").write_text(text, encoding="utf-8")
    if bad_utf8:
        (base / "train" / "pos" / "999_9.txt").write_bytes(b"Brilliant \xff\xfe film, wonderful cast")
    return base


@pytest.fixture
def aclimdb(tmp_path: Path) -> Path:
    return write_aclimdb(tmp_path)


@pytest.fixture(scope="session")
def session_aclimdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_aclimdb(tmp_path_factory.mktemp("data"), {"train": 150, "test": 100})


def write_archive(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname="aclImdb")
    return archive


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("review", "sentiment")) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bow-bigram run on the session dataset, trained once for all tests that only read it."""
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "bigram"
    train("bow-bigram", session_aclimdb, out, epochs=4)
    return out


@pytest.fixture(scope="session")
def sequence_run(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sum-embedding run (the modelkit tutorial's model) on the session dataset, trained once."""
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "sum-embedding"
    train("sum-embedding", session_aclimdb, out, epochs=2)
    return out


#: Each label's own words: a review of a label holds a few of them among neutral words.
CUES = {
    "negative": ["awful", "boring", "dull", "tedious"],
    "neutral": ["average", "okay", "passable", "ordinary"],
    "positive": ["wonderful", "superb", "moving", "brilliant"],
}


def three_label_reviews(count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for i in range(count):
        label = list(CUES)[i % 3]
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(6, 15))] + rng.sample(CUES[label], 2)
        rng.shuffle(words)
        records.append({"text": " ".join(words), "label": label})
    return records


@pytest.fixture(scope="session")
def three_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 reviews of three labels (negative, neutral, positive) in a JSON lines file."""
    return write_jsonl(tmp_path_factory.mktemp("labels") / "three.jsonl", three_label_reviews(300, seed=3))


@pytest.fixture(scope="session")
def three_label_run(three_labels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bow-bigram run of the three labels, trained once for all tests that only read it."""
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "three"
    train("bow-bigram", three_labels, out, epochs=10)
    return out


#: The default suite's budget on 2 cores (``make test``): the whole of it, not a selection.
SUITE_BUDGET_S = 420.0
_started = time.monotonic()
_TOOK = pytest.StashKey[float]()


def _whole_default_suite(config: pytest.Config) -> bool:
    """Whether this session is the default suite: every test file, ``-m "not full_data"``, no ``-k``."""
    given = [arg for arg in config.invocation_params.args if not arg.startswith("-")]
    return (
        config.getoption("markexpr") == "not full_data"
        and not config.getoption("keyword")
        and all(Path(arg).resolve() == Path(__file__).parent.resolve() for arg in given if Path(arg).exists())
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Time the whole default suite against its budget; ``REVIEWLENS_SUITE_BUDGET=enforce`` fails it when over."""
    config = session.config
    if os.environ.get("PYTEST_XDIST_WORKER") or not _whole_default_suite(config):
        return
    took = time.monotonic() - _started
    config.stash[_TOOK] = took
    if took > SUITE_BUDGET_S and os.environ.get("REVIEWLENS_SUITE_BUDGET") == "enforce" and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    took = config.stash.get(_TOOK, None)
    if took is None:
        return
    over = took > SUITE_BUDGET_S
    terminalreporter.write_line(
        f"default suite: {took:.0f} s of its {SUITE_BUDGET_S:.0f} s budget on 2 cores"
        + (" -- OVER BUDGET: find the slow tests above (--durations) and make them faster" if over else ""),
        red=over, green=not over,
    )  # fmt: skip
