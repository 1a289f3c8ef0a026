#!/usr/bin/env bash
# PromptKD, step 2: distil the teacher into the ViT-B/16 student on every training image of
# DATASET, unlabeled (TRAIN_ON all), then evaluate on the base classes
# (see scripts/common/base2new_train.sh and scripts/promptkd/teacher.bash). CFG overrides the config.
#   bash scripts/promptkd/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
CFG=${CFG:-vit_b16_c2_ep20_batch8_4+4ctx}
mapfile -t teacher < <(teacher_args base2new base "${1:-}")
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" PromptKD "$CFG" "${@:1:2}" "${teacher[@]}" "${@:3}"
