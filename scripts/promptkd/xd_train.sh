#!/usr/bin/env bash
# PromptKD, step 2 (cross-dataset): distil the ImageNet teacher into the student on every ImageNet training
# image, unlabeled (see scripts/common/xd_train.sh and scripts/promptkd/teacher.bash). CFG overrides the config.
#   bash scripts/promptkd/xd_train.sh SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
CFG=${CFG:-vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets}
mapfile -t teacher < <(teacher_args xd source "${SOURCE_DATASET:-imagenet}")
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" PromptKD "$CFG" "${@:1:1}" "${teacher[@]}" "${@:2}"
