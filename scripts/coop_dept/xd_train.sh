#!/usr/bin/env bash
# CoOp with DePT: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/coop_dept/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep10_bs4_lr35}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" CoOp_DePT "$CFG" "$@"
