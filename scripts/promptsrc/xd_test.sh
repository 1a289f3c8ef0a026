#!/usr/bin/env bash
# PromptSRC: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/promptsrc/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" PromptSRC "$CFG" "$@"
