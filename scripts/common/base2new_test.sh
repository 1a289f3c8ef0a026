#!/usr/bin/env bash
# Base-to-new, step 2: evaluate the model trained on base classes on the new classes.
# Loads the last checkpoint training saved, or epoch $LOADEP when set.
#   bash scripts/common/base2new_test.sh TRAINER CFG DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 4 "TRAINER CFG DATASET SEED [KEY VALUE ...]" "$@"
TRAINER=$1 CFG=$2 DATASET=$3 SEED=$4
shift 4
run_folder base2new base "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
MODEL_DIR=$DIR
run_folder base2new new "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
before_run "$@"
train_py "$TRAINER" "$CFG" "$DATASET" "$DIR" --seed "$SEED" \
  --model-dir "$MODEL_DIR" ${LOADEP:+--load-epoch "$LOADEP"} --eval-only \
  DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new "$@"
