#!/usr/bin/env bash
# Zero-shot CLIP: evaluate on DATASET's all, base or new classes (nothing is trained).
#   bash scripts/common/zeroshot.sh CFG DATASET [all|base|new] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage_unless 2 "CFG DATASET [all|base|new] [KEY VALUE ...]" "$@"
CFG=$1 DATASET=$2 SUBSAMPLE=${3:-all}
shift $(( $# >= 3 ? 3 : 2 ))
run_folder zeroshot "$SUBSAMPLE" ZeroshotCLIP "$CFG" "$DATASET" ""
before_run "$@"
train_py ZeroshotCLIP "$CFG" "$DATASET" "$DIR" --eval-only \
  DATASET.SUBSAMPLE_CLASSES "$SUBSAMPLE" "$@"
