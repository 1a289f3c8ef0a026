#!/usr/bin/env bash
# MMA: xd_train (see scripts/common/xd_train.sh). CFG overrides the config (default: the authors'
# ImageNet config, vit_b16_ep5_imnet).
#   bash scripts/mma/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep5_imnet}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" MMA "$CFG" "$@"
