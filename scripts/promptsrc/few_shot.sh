#!/usr/bin/env bash
# PromptSRC: few_shot (see scripts/common/few_shot.sh). CFG overrides the config.
#   bash scripts/promptsrc/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" PromptSRC "$CFG" "$@"
