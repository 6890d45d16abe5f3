"""Train one recipe with several seeds on the same data and report each run and the mean and spread.

    python benchmarks/seeds.py --recipe bilstm-masked --data ../shared/data/aclImdb-labeled.tar.gz --seeds 1,2,3 \
        --out runs/seeds [--epochs N] [--extra RUN_DIR ...]

Each seed is a fresh ``reviewlens train`` process (the CLI, as a user runs it), so one run's memory or threads do not
leak into the next; a run already in ``--out`` is read, not retrained, so the script can be run again after a kill.
``--extra`` adds finished runs of the same recipe and data (an earlier seed) to the summary. Selection is each run's
own (validation); the test figure is each run's one reading of the test split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _run(recipe: str, data: str, seed: int, out: Path, epochs: int | None) -> dict[str, object]:
    if not (out / "metadata.json").exists():
        command = [sys.executable, "-m", "reviewlens", "train", "--recipe", recipe, "--data", data, "--seed", str(seed),
                   "--out", str(out), *(["--epochs", str(epochs)] if epochs else []), "--json"]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"seed {seed}: trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return dict(json.loads((out / "metadata.json").read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs (OUT/RECIPE-seed-N)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="finished runs to add to the summary")
    args = parser.parse_args()
    runs = [_run(args.recipe, args.data, int(seed), args.out / f"{args.recipe}-seed-{seed}", args.epochs)
            for seed in args.seeds.split(",") if seed.strip()]  # fmt: skip
    runs += [json.loads((path / "metadata.json").read_text()) for path in args.extra]
    print("| seed | best epoch | validation | test | train seconds |")
    print("| --- | --- | --- | --- | --- |")
    for run in runs:
        hyper, timings = run["hyperparameters"], run.get("timings", {})
        print(f"| {hyper['seed']} | {run['best_epoch']} | {run['val_accuracy']:.2%} | {run['test_accuracy']:.2%} | "
              f"{timings.get('fit_s', 0):.0f} |")  # fmt: skip
    for key in ("val_accuracy", "test_accuracy"):
        values = [float(run[key]) for run in runs]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{key}: mean {statistics.mean(values):.2%}, standard deviation {spread:.2%}, "
            f"range {min(values):.2%}-{max(values):.2%} over {len(values)} runs"
        )


if __name__ == "__main__":
    main()
