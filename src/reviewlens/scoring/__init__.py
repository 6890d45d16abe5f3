"""``reviewlens score``: score files of reviews with a run, streaming, one output shard per input shard.

An input is a file or a directory of shards: CSV, JSON lines, Parquet, or plain text (one review per line),
each but Parquet optionally ``.gz``. Each shard is read in record batches (pyarrow's readers; JSON lines and
text through msgspec and a line splitter, so that one bad line is one bad row, not a failed block), scored
with ``Run.predict`` and written as it goes, so memory stays flat however large the input. A shard's output is
written under a hidden temporary name and renamed when whole, then its input is recorded (size, modification
time, SHA-256) in ``.score.sources.jsonl``: a rerun skips an output shard whose input is still what it was
scored from, and scores again one whose input changed (or is not recorded). ``score.json`` in the output folder
names the run (its metadata's SHA-256) and the settings; another run's or other settings' output folder is refused.

A bad row (a missing or non-string text, invalid UTF-8, a text over ``max_review_bytes``, a blank text, a
line that is not JSON, a CSV row with the wrong number of fields) is reported with its file and row, counted
and left out; ``strict`` makes the first one a ``ReviewlensError`` instead. Rows are numbered from 1 in each
file: lines of text and JSON lines, records after the header in CSV, rows in Parquet.

Where shards are scored is an ``Engine``; every engine runs ``score_shard``, the unit of work, so they all
write the same files, and hands it ``Predictions``: where its batches are predicted, a few ahead of the
writing. ``LocalEngine`` scores shards one after another in this process, its batches predicted in helper
processes (``--workers``) or here; ``RayEngine`` the same way, its batches predicted by Ray actors.

The package follows those seams: ``base`` (the job's settings and records), ``shards`` (finding them),
``readers``, ``stream`` (one shard scored and written), ``engines`` (local and Ray) and ``job`` (``score``).
"""

from reviewlens.scoring.base import (
    INPUT_FORMATS,
    LOCK_FILE,
    MANIFEST_FILE,
    OUTPUT_FORMATS,
    REPORTED_BAD_ROWS,
    SOURCES_FILE,
    BadRow,
    Engine,
    Events,
    OutputFormat,
    ScoreJob,
    Shard,
    ShardResult,
    Source,
    Summary,
)
from reviewlens.scoring.engines import ENGINES, LocalEngine, RayEngine, default_workers
from reviewlens.scoring.job import score
from reviewlens.scoring.readers import READERS
from reviewlens.scoring.shards import find_shards
from reviewlens.scoring.stream import Predictions, output_schema, score_shard

__all__ = [
    "ENGINES",
    "INPUT_FORMATS",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "OUTPUT_FORMATS",
    "READERS",
    "REPORTED_BAD_ROWS",
    "SOURCES_FILE",
    "BadRow",
    "Engine",
    "Events",
    "LocalEngine",
    "OutputFormat",
    "Predictions",
    "RayEngine",
    "ScoreJob",
    "Shard",
    "ShardResult",
    "Source",
    "Summary",
    "default_workers",
    "find_shards",
    "output_schema",
    "score",
    "score_shard",
]
