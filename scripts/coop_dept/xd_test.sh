#!/usr/bin/env bash
# CoOp with DePT: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/coop_dept/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep10_bs4_lr35}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" CoOp_DePT "$CFG" "$@"
