#!/usr/bin/env bash
# TCP: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/tcp/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep50_ctx4}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" TCP "$CFG" "$@"
