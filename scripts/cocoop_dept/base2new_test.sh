#!/usr/bin/env bash
# CoCoOp with DePT: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config.
#   bash scripts/cocoop_dept/base2new_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" CoCoOp_DePT "$CFG" "$@"
