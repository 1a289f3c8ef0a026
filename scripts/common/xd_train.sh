#!/usr/bin/env bash
# Cross-dataset and domain generalization, step 1: train on all ImageNet classes.
#   bash scripts/common/xd_train.sh TRAINER CFG SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 3 "TRAINER CFG SEED [KEY VALUE ...]" "$@"
TRAINER=$1 CFG=$2 SEED=$3
shift 3
DATASET=${SOURCE_DATASET:-imagenet}
run_folder xd source "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
before_run "$@"
train_py "$TRAINER" "$CFG" "$DATASET" "$DIR" --seed "$SEED" \
  DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES all "$@"
