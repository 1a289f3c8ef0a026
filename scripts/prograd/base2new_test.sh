#!/usr/bin/env bash
# ProGrad: base2new_test (see scripts/common/base2new_test.sh). CFG overrides the config.
#   bash scripts/prograd/base2new_test.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_test.sh" ProGrad "$CFG" "$@"
