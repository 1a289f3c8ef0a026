#!/usr/bin/env bash
# MMRL: xd_test (see scripts/common/xd_test.sh). CFG overrides the config. The source model's keys
# are kept (no per-dataset keys: EuroSAT's REP_DIM would not fit an ImageNet model).
#   bash scripts/mmrl/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MMRL "$CFG" "$@"
