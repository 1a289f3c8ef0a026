#!/usr/bin/env bash
# IVLP: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config.
#   bash scripts/ivlp/base2new_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" IVLP "$CFG" "$@"
