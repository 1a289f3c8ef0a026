#!/usr/bin/env bash
# PromptKD, step 2: evaluate the student on the new classes
# (see scripts/common/base2new_test.sh and scripts/promptkd/teacher.bash). CFG overrides the config.
#   bash scripts/promptkd/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
CFG=${CFG:-vit_b16_c2_ep20_batch8_4+4ctx}
mapfile -t teacher < <(teacher_args base2new base "${1:-}")
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" PromptKD "$CFG" "${@:1:2}" "${teacher[@]}" "${@:3}"
