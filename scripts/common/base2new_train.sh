#!/usr/bin/env bash
# Base-to-new, step 1: train TRAINER on the base classes of DATASET, then evaluate on base.
#   bash scripts/common/base2new_train.sh TRAINER CFG DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 4 "TRAINER CFG DATASET SEED [KEY VALUE ...]" "$@"
TRAINER=$1 CFG=$2 DATASET=$3 SEED=$4
shift 4
run_folder base2new base "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
before_run "$@"
train_py "$TRAINER" "$CFG" "$DATASET" "$DIR" --seed "$SEED" \
  DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base "$@"
