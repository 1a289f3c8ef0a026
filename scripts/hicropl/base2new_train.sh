#!/usr/bin/env bash
# HiCroPL: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config; by default the authors'
# choice: vit_b16_c2_ep40_batch128_16ctx (batch 128, 40 epochs) on ImageNet, vit_b16_c2_ep50_batch32_16ctx
# (batch 32, 50 epochs) on the other datasets.
#   bash scripts/hicropl/base2new_train.sh DATASET SEED [KEY VALUE ...]
case "${1:-}" in
  imagenet) default=vit_b16_c2_ep40_batch128_16ctx ;;
  *) default=vit_b16_c2_ep50_batch32_16ctx ;;
esac
CFG=${CFG:-$default}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" HiCroPL "$CFG" "$@"
