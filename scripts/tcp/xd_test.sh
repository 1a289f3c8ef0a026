#!/usr/bin/env bash
# TCP: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/tcp/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep50_ctx4}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" TCP "$CFG" "$@"
