#!/usr/bin/env bash
# PromptSRC: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config.
#   bash scripts/promptsrc/base2new_train.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" PromptSRC "$CFG" "$@"
