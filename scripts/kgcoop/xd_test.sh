#!/usr/bin/env bash
# KgCoOp: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/kgcoop/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" KgCoOp "$CFG" "$@"
