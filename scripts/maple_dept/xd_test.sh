#!/usr/bin/env bash
# MaPLe with DePT: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/maple_dept/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep10_batch4_2ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MaPLe_DePT "$CFG" "$@"
