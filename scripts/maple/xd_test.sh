#!/usr/bin/env bash
# MaPLe: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/maple/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MaPLe "$CFG" "$@"
