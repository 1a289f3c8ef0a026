#!/usr/bin/env bash
# KgCoOp with DePT: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config.
#   bash scripts/kgcoop_dept/base2new_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep10_ctxv1_bs4_lr35}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" KgCoOp_DePT "$CFG" "$@"
