#!/usr/bin/env bash
# PromptKD, step 3 (cross-dataset): evaluate the ImageNet student on DATASET against the teacher's text features
# of DATASET's classes (see scripts/common/xd_test.sh and scripts/promptkd/teacher.bash). CFG overrides the config.
#   bash scripts/promptkd/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
CFG=${CFG:-vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets}
mapfile -t teacher < <(teacher_args xd source "${SOURCE_DATASET:-imagenet}")
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" PromptKD "$CFG" "${@:1:2}" "${teacher[@]}" "${@:3}"
