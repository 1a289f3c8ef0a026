#!/usr/bin/env bash
# MMA: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config; by default the authors'
# choice: vit_b16_ep5_imnet (batch 128) on ImageNet, vit_b16_ep5 (batch 16) on the other datasets.
#   bash scripts/mma/base2new_train.sh DATASET SEED [KEY VALUE ...]
case "${1:-}" in
  imagenet) default=vit_b16_ep5_imnet ;;
  *) default=vit_b16_ep5 ;;
esac
CFG=${CFG:-$default}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" MMA "$CFG" "$@"
