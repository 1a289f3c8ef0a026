#!/usr/bin/env bash
# IVLP: xd_train (see scripts/common/xd_train.sh). CFG overrides the config.
#   bash scripts/ivlp/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" IVLP "$CFG" "$@"
