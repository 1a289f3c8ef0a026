#!/usr/bin/env bash
# HiCroPL: few_shot (see scripts/common/few_shot.sh). CFG overrides the config.
#   bash scripts/hicropl/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep50_batch32_16ctx_few_shot}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" HiCroPL "$CFG" "$@"
