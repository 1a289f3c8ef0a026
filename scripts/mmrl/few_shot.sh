#!/usr/bin/env bash
# MMRL: few_shot (see scripts/common/few_shot.sh). CFG overrides the config; the authors' per-dataset
# keys (dataset_keys.bash) come before yours.
#   bash scripts/mmrl/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
source "$(dirname "$0")/dataset_keys.bash"
CFG=${CFG:-vit_b16_few_shot}
# shellcheck disable=SC2046  # the keys are words (none while arguments are missing: the usage line then)
[ "$#" -ge 3 ] && set -- "${@:1:3}" $(dataset_keys "$1") "${@:4}"
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" MMRL "$CFG" "$@"
