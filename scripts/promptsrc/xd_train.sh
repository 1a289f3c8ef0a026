#!/usr/bin/env bash
# PromptSRC: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/promptsrc/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" PromptSRC "$CFG" "$@"
