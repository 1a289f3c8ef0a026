#!/usr/bin/env bash
# CoOp with DePT: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config.
#   bash scripts/coop_dept/base2new_train.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep10_bs4_lr35}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" CoOp_DePT "$CFG" "$@"
