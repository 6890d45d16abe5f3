#!/usr/bin/env bash
# Full-data pretraining (train + train/unsup, validation held out) and fine-tuning with VAT, on CPU, resumable.
#
#   benchmarks/pretrain_full.sh OUT_DIR [ACLIMDB_DIR]
#
# OUT_DIR gets: data/ (both archives of ../shared/data unpacked, unless ACLIMDB_DIR holding train/unsup is given),
# encoder/ (reviewlens pretrain), run/ (reviewlens train --recipe pretrained-vat), log lines on stdout/stderr.
# Run it again after a kill: each step resumes from its last checkpoint (pretraining: every 200 steps; fine-tuning:
# every epoch), and a finished step is skipped. Sized for 2 shared cores (BENCHMARKS.md): pretraining runs
# PRETRAIN_EPOCHS (3) epochs or stops at PRETRAIN_MINUTES (45) of training, whichever comes first (an epoch took
# about 16 minutes); fine-tuning runs FINETUNE_EPOCHS (3) epochs of reviews cut at MAX_LENGTH (256) tokens (about
# 10 minutes an epoch with VAT, every layer training from the first).
# A GPU or a longer budget: SIZES replaces the model's sizes (say "--units 1024 --embedding 256 --batch-size 256"),
# DIRECTION=backward pretrains ULMFiT's backward model (ensemble its run with a forward one: README.md),
# FROM=ENCODER_DIR continues an encoder instead of starting one, SCHEDULE=slanted fine-tunes with ULMFiT's rate.
# Python: $PYTHON, else the one on PATH (reviewlens must import: the project's virtualenv, or PYTHONPATH=src).
set -euo pipefail

OUT=${1:?usage: benchmarks/pretrain_full.sh OUT_DIR [ACLIMDB_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED_DATA:-$HERE/../../shared/data}
PYTHON=${PYTHON:-python}
PRETRAIN_MINUTES=${PRETRAIN_MINUTES:-45}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-3}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-3}
MAX_LENGTH=${MAX_LENGTH:-256}
read -r -a SIZES <<< "${SIZES:---objective lm --vocabulary 20000 --embedding 128 --units 256 --layers 1 --length 128 --batch-size 64}"
DIRECTION=${DIRECTION:-forward}
SCHEDULE=${SCHEDULE:-constant}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
reviewlens() { "$PYTHON" -c "from reviewlens.cli import main; main()" "$@"; }

DATA=${2:-$OUT/data/aclImdb}
if [ ! -d "$DATA/train/unsup" ]; then
  echo "unpacking $SHARED/aclImdb-labeled.tar.gz and aclImdb-unsup.tar.gz into $OUT/data" >&2
  mkdir -p "$OUT/data"
  tar xzf "$SHARED/aclImdb-labeled.tar.gz" -C "$OUT/data"
  tar xzf "$SHARED/aclImdb-unsup.tar.gz" -C "$OUT/data"
fi

echo "$(date -u +%FT%TZ) pretraining ($PRETRAIN_MINUTES minutes at most) into $OUT/encoder" >&2
if [ ! -f "$OUT/encoder/metadata.json" ]; then
  resume=()
  [ -d "$OUT/.encoder.partial" ] && resume=(--resume)
  model=("${SIZES[@]}" --direction "$DIRECTION")
  [ -n "${FROM:-}" ] && model=(--from "$FROM")  # its sizes and direction
  reviewlens pretrain --data "$DATA" --out "$OUT/encoder" "${model[@]}" --epochs "$PRETRAIN_EPOCHS" \
    --max-minutes "$PRETRAIN_MINUTES" \
    --require-unlabeled "${resume[@]}"
fi

echo "$(date -u +%FT%TZ) fine-tuning pretrained-vat ($FINETUNE_EPOCHS epochs) into $OUT/run" >&2
if [ ! -f "$OUT/run/metadata.json" ]; then
  resume=()
  [ -d "$OUT/.run.partial" ] && resume=(--resume)
  reviewlens train --recipe pretrained-vat --data "$DATA" --encoder "$OUT/encoder" --out "$OUT/run" \
    --epochs "$FINETUNE_EPOCHS" --max-length "$MAX_LENGTH" --lr-schedule "$SCHEDULE" "${resume[@]}"
fi

echo "$(date -u +%FT%TZ) done" >&2
"$PYTHON" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
encoder = json.loads((out / "encoder" / "metadata.json").read_text())
run = json.loads((out / "run" / "metadata.json").read_text())
print(f"pretraining: {encoder['objective']}, {encoder['tokens_seen']:,} tokens predicted in {encoder['seconds']:.0f} s "
      f"({encoder['tokens_per_second']:,.0f}/s), loss {encoder['loss'][-1]:.4f}, validation perplexity "
      f"{encoder['val_perplexity'][-1]:.1f}, machine {encoder['machine']}")
print(f"fine-tuning: pretrained-vat, best epoch {run['best_epoch']} of {run['hyperparameters']['epochs']}, "
      f"{run['timings'].get('fit_s', 0):.0f} s training")
print(f"validation accuracy {run['val_accuracy']:.4f} (chosen on it); test accuracy {run['test_accuracy']:.4f} (read once)")
EOF
