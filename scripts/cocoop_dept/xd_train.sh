#!/usr/bin/env bash
# CoCoOp with DePT: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/cocoop_dept/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" CoCoOp_DePT "$CFG" "$@"
