#!/usr/bin/env bash
# ProGrad: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config.
#   bash scripts/prograd/base2new_train.sh DATASET SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep100}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" ProGrad "$CFG" "$@"
