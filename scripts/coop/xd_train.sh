#!/usr/bin/env bash
# CoOp: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/coop/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep50}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" CoOp "$CFG" "$@"
