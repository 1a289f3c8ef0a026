#!/usr/bin/env bash
# MMRL++: xd_test (see scripts/common/xd_test.sh). CFG overrides the config. The evaluated dataset's BETA
# (dataset_keys.bash) comes before yours, as the authors' code sets it per target dataset; the weights are
# the source model's.
#   bash scripts/mmrlpp/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/dataset_keys.bash"
CFG=${CFG:-vit_b16_cross_datasets}
# shellcheck disable=SC2046  # the keys are words (none while arguments are missing: the usage line then)
[ "$#" -ge 2 ] && set -- "${@:1:2}" $(dataset_keys xd "$1") "${@:3}"
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MMRLpp "$CFG" "$@"
