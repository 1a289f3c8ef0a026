#!/usr/bin/env bash
# MMA: xd_test (see scripts/common/xd_test.sh). CFG overrides the config (default: the authors'
# ImageNet config, vit_b16_ep5_imnet, the one the source model was trained with).
#   bash scripts/mma/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep5_imnet}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MMA "$CFG" "$@"
