#!/usr/bin/env bash
# KgCoOp: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/kgcoop/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" KgCoOp "$CFG" "$@"
