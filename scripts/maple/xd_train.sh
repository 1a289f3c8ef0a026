#!/usr/bin/env bash
# MaPLe: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/maple/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" MaPLe "$CFG" "$@"
