#!/usr/bin/env bash
# MPL: few_shot (see scripts/common/few_shot.sh). CFG overrides the config.
#   bash scripts/mpl/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" MPL "$CFG" "$@"
