#!/usr/bin/env bash
# MPL: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/mpl/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1_xd}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" MPL "$CFG" "$@"
