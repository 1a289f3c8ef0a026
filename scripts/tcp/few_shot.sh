#!/usr/bin/env bash
# TCP: few_shot (see scripts/common/few_shot.sh). CFG overrides the config.
#   bash scripts/tcp/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep50_ctx4}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" TCP "$CFG" "$@"
