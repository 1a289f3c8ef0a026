#!/usr/bin/env bash
# VPT: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/vpt/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" VPT "$CFG" "$@"
