#!/usr/bin/env bash
# CoOp: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/coop/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep50}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" CoOp "$CFG" "$@"
