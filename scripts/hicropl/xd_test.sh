#!/usr/bin/env bash
# HiCroPL: xd_test (see scripts/common/xd_test.sh). CFG overrides the config (default: the authors'
# cross-dataset config, vit_b16_c2_ep5_batch32_2ctx_cross_datasets, the one the source model was trained with).
#   bash scripts/hicropl/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch32_2ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" HiCroPL "$CFG" "$@"
