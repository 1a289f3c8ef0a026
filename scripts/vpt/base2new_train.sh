#!/usr/bin/env bash
# VPT: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config.
#   bash scripts/vpt/base2new_train.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" VPT "$CFG" "$@"
