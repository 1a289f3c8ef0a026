#!/usr/bin/env bash
# PromptKD, step 1 (cross-dataset): train the ViT-L/14 PromptSRC teacher on all ImageNet classes.
#   bash scripts/promptkd/teacher_xd_train.sh SEED [KEY VALUE ...]
source "$(dirname "$0")/teacher.bash"
export SHOTS=${TEACHER_SHOTS:-16}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" PromptSRC "$TEACHER_CFG" "$@"
