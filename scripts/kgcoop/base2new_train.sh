#!/usr/bin/env bash
# KgCoOp: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config.
#   bash scripts/kgcoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" KgCoOp "$CFG" "$@"
