#!/usr/bin/env bash
# Cross-dataset and domain generalization, step 2: evaluate the ImageNet model on DATASET
# (the 10 other datasets, or imagenetv2 / imagenet_sketch / imagenet_a / imagenet_r).
# Loads the last checkpoint training saved, or epoch $LOADEP when set.
#   bash scripts/common/xd_test.sh TRAINER CFG DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 4 "TRAINER CFG DATASET SEED [KEY VALUE ...]" "$@"
TRAINER=$1 CFG=$2 DATASET=$3 SEED=$4
shift 4
run_folder xd source "$TRAINER" "$CFG" "${SOURCE_DATASET:-imagenet}" "$SHOTS" "$SEED"
MODEL_DIR=$DIR
run_folder xd target "$TRAINER" "$CFG" "$DATASET" "$SHOTS" "$SEED"
before_run "$@"
train_py "$TRAINER" "$CFG" "$DATASET" "$DIR" --seed "$SEED" \
  --model-dir "$MODEL_DIR" ${LOADEP:+--load-epoch "$LOADEP"} --eval-only \
  DATASET.SUBSAMPLE_CLASSES all "$@"
