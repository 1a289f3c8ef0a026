#!/usr/bin/env bash
# MMRL++: few_shot (see scripts/common/few_shot.sh). CFG overrides the config; the authors' per-dataset
# keys (dataset_keys.bash, their base-to-new table, which their code also applies to few-shot) come before yours.
#   bash scripts/mmrlpp/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
source "$(dirname "$0")/dataset_keys.bash"
CFG=${CFG:-vit_b16_few_shot}
# shellcheck disable=SC2046  # the keys are words (none while arguments are missing: the usage line then)
[ "$#" -ge 3 ] && set -- "${@:1:3}" $(dataset_keys b2n "$1") "${@:4}"
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" MMRLpp "$CFG" "$@"
