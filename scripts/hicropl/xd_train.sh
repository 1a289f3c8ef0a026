#!/usr/bin/env bash
# HiCroPL: xd_train (see scripts/common/xd_train.sh). CFG overrides the config (default: the authors'
# cross-dataset config, vit_b16_c2_ep5_batch32_2ctx_cross_datasets).
#   bash scripts/hicropl/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch32_2ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" HiCroPL "$CFG" "$@"
