#!/usr/bin/env bash
# MaPLe with DePT: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config.
#   bash scripts/maple_dept/base2new_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep10_batch4_2ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" MaPLe_DePT "$CFG" "$@"
