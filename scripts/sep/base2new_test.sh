#!/usr/bin/env bash
# SEP: base2new_test (see scripts/common/base2new_test.sh). ImageNet and SUN397 use the authors'
# 10-epoch batch-128 config, the other datasets the 50-epoch batch-32 one; CFG overrides it.
#   bash scripts/sep/base2new_test.sh DATASET SEED [KEY VALUE ...]
case "${1:-}" in
  imagenet | sun397) DEFAULT_CFG=vit_b16_ep10_batch128 ;;
  *) DEFAULT_CFG=vit_b16_ep50_batch32 ;;
esac
CFG=${CFG:-$DEFAULT_CFG}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" SEP "$CFG" "$@"
