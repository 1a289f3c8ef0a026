#!/usr/bin/env bash
# Few-shot: train TRAINER with SHOTS images per class on all classes of DATASET, then evaluate.
#   bash scripts/common/few_shot.sh TRAINER CFG DATASET SEED SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 5 "TRAINER CFG DATASET SEED SHOTS [KEY VALUE ...]" "$@"
TRAINER=$1 CFG=$2 DATASET=$3 SEED=$4 SHOTS=$5
shift 5
run_folder few_shot "shots_$SHOTS" "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
before_run "$@"
train_py "$TRAINER" "$CFG" "$DATASET" "$DIR" --seed "$SEED" \
  DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES all "$@"
