#!/usr/bin/env bash
# MMRL++: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config; by default the authors':
# vit_b16_imagenet on ImageNet, vit_b16 elsewhere, with their per-dataset keys (dataset_keys.bash) before yours.
#   bash scripts/mmrlpp/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/dataset_keys.bash"
[ "${1:-}" = imagenet ] && default=vit_b16_imagenet || default=vit_b16
CFG=${CFG:-$default}
# shellcheck disable=SC2046  # the keys are words (none while arguments are missing: the usage line then)
[ "$#" -ge 2 ] && set -- "${@:1:2}" $(dataset_keys b2n "$1") "${@:3}"
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" MMRLpp "$CFG" "$@"
