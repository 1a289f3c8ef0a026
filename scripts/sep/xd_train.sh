#!/usr/bin/env bash
# SEP: xd_train (see scripts/common/xd_train.sh), with the authors' 3-epoch cross-dataset config; a CFG
# environment variable overrides.
#   bash scripts/sep/xd_train.sh SEED [KEY VALUE ...]
CFG=${CFG:-vit_b16_ep3_xd}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/xd_train.sh" SEP "$CFG" "$@"
