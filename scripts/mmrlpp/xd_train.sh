#!/usr/bin/env bash
# MMRL++: xd_train (see scripts/common/xd_train.sh). CFG overrides the config; ImageNet's BETA 0.9 and
# REG_WEIGHT 0.1 (dataset_keys.bash) come before yours, as the authors' code overrides their config's 0.2 with it.
#   bash scripts/mmrlpp/xd_train.sh SEED [KEY VALUE ...]
source "$(dirname "$0")/dataset_keys.bash"
CFG=${CFG:-vit_b16_cross_datasets}
# shellcheck disable=SC2046  # the keys are words (none while arguments are missing: the usage line then)
[ "$#" -ge 1 ] && set -- "$1" $(dataset_keys xd "${SOURCE_DATASET:-imagenet}") "${@:2}"
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" MMRLpp "$CFG" "$@"
