#!/usr/bin/env bash
# IVLP: xd_test (see scripts/common/xd_test.sh). CFG overrides the config.
#   bash scripts/ivlp/xd_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_test.sh" IVLP "$CFG" "$@"
