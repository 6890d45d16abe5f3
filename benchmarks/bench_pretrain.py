"""Pretraining throughput and progress of the two objectives in the same time: LSTM language model vs masked-token
Transformer, each pretrained for ``--minutes`` on the same text (train split + train/unsup).

    python benchmarks/bench_pretrain.py --data DIR [--minutes 3] [--objectives lm,mlm] [--out DIR]
    python benchmarks/bench_pretrain.py --data DIR --finetune ENCODER_DIR [--max-length 400] [--steps 30]

``--data`` is an aclImdb directory holding train/unsup (unpack ../shared/data's two archives into one tree).
Each objective runs in its own process (``reviewlens pretrain --max-minutes``); printed per objective: input tokens
per second, tokens predicted per second (mlm predicts 15% of its input), reviews per second (input tokens/s over
the mean tokens a review has), the sampled-softmax loss,
the held-out perplexity (full softmax), and the seconds spent reading and tokenizing before the first step.
``--finetune`` instead times fine-tuning steps of pretrained-vat and pretrained-finetune on the encoder (batches of
the recipe's size, real train and unlabeled reviews cut at ``--max-length``), after two warm-up steps: labeled
reviews per second, and the minutes an epoch of the train split takes at that rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

#: The small sizes compared (about the same embedding; 2-core scale).
SIZES = {
    "lm": ["--embedding", "128", "--units", "256", "--layers", "1"],
    "mlm": ["--embedding", "128", "--layers", "2", "--heads", "2", "--dense", "256"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--objectives", default="lm,mlm")
    parser.add_argument("--out", type=Path, default=None, help="keep the encoders here [default: a temporary dir]")
    parser.add_argument("--finetune", type=Path, default=None, metavar="ENCODER_DIR")
    parser.add_argument("--max-length", type=int, default=400)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if args.finetune is not None:
        finetune(args.data, args.finetune, args.max_length, args.steps)
        return
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    root.mkdir(parents=True, exist_ok=True)
    for objective in args.objectives.split(","):
        out = root / f"encoder-{objective}"
        command = [sys.executable, "-c", "from reviewlens.cli import main; main()", "pretrain", "--data",
                   str(args.data), "--out", str(out), "--objective", objective, *SIZES[objective],
                   "--max-minutes", str(args.minutes), "--json"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-3000:])
            sys.exit(result.returncode)
        m = json.loads(result.stdout)
        reviews = m["data"]["train"] + m["data"]["unsup"] - m["data"]["held_out"]
        per_review = m["tokens_per_epoch"] / max(reviews, 1)
        rate = m["input_tokens_per_second"]
        print(json.dumps({
            "objective": objective, "sizes": " ".join(SIZES[objective]), "seconds": m["seconds"],
            "setup_seconds": m["setup_seconds"], "tokens_predicted": m["tokens_seen"],
            "predicted_per_s": m["tokens_per_second"], "input_tokens_per_s": rate,
            "reviews_per_s": round(rate / per_review, 2), "tokens_per_review": round(per_review, 1),
            "epoch_fraction": round(m["input_tokens_seen"] / m["tokens_per_epoch"], 4), "loss": round(m["loss"][-1], 4),
            "val_perplexity": round(m["val_perplexity"][-1], 1), "machine": m["machine"],
        }))  # fmt: skip
        sys.stdout.flush()


def finetune(data: Path, encoder_dir: Path, length: int, steps: int) -> None:
    import time

    import numpy as np

    from reviewlens.data import Dataset
    from reviewlens.families.pretrained import _cut, _FineTuner
    from reviewlens.pretraining import load_encoder
    from reviewlens.recipes import get_recipe

    encoder = load_encoder(encoder_dir)
    encoder.vectorizer.length = length
    dataset = Dataset(data)
    rng = np.random.default_rng(0)
    texts, labels = dataset.read("train")
    train_size = len(texts)
    chosen = rng.permutation(len(texts))[: 64 * (steps + 2)]
    x = encoder.vectorizer.transform(texts[i] for i in chosen)
    y = np.asarray(labels, np.float32)[chosen]
    for name in ("pretrained-vat", "pretrained-finetune"):
        recipe = get_recipe(name)
        tuner = _FineTuner(encoder.model, recipe, 1, seed=0)
        dim, batch = int(tuner.embedding.output_dim), recipe.batch_size
        unlabeled_batch = int(recipe.model.get("unlabeled_batch", batch))  # type: ignore[call-overload]
        seconds = 0.0
        for step in range(steps + 2):
            rows = slice(step * batch, (step + 1) * batch)
            unlabeled = _cut(x[rng.integers(0, len(x), unlabeled_batch)])
            noise = rng.normal(size=(*unlabeled.shape, dim)).astype(np.float32)
            started = time.perf_counter()
            tuner.step_all(_cut(x[rows]), y[rows], unlabeled, noise)
            seconds += (time.perf_counter() - started) if step >= 2 else 0.0
        rate = steps * batch / seconds
        print(json.dumps({"recipe": name, "max_length": length, "reviews_per_s": round(rate, 2),
                          "epoch_minutes": round(train_size / rate / 60, 1), "train_reviews": train_size,
                          "encoder": encoder.metadata["model"]}))  # fmt: skip
        sys.stdout.flush()


if __name__ == "__main__":
    main()
