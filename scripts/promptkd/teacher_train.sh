#!/usr/bin/env bash
# PromptKD, step 1 (base-to-new): train the ViT-L/14 PromptSRC teacher on the base classes of DATASET (the
# authors' recipe). Skip it when you have the authors' released teacher: give it to the student as TEACHER=FILE.
#   bash scripts/promptkd/teacher_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
export SHOTS=${TEACHER_SHOTS:-16}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" PromptSRC "$TEACHER_CFG" "$@"
