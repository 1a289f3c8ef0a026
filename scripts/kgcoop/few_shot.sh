#!/usr/bin/env bash
# KgCoOp: few_shot (see scripts/common/few_shot.sh). CFG overrides the config.
#   bash scripts/kgcoop/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" KgCoOp "$CFG" "$@"
