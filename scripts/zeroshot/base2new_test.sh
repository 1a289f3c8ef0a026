#!/usr/bin/env bash
# Zero-shot CLIP, base-to-new: evaluate on DATASET's base classes, then its new classes.
# Nothing is trained, so there is no seed. CFG overrides the config.
#   bash scripts/zeroshot/base2new_test.sh DATASET [KEY VALUE ...]
set -euo pipefail
CFG=${CFG:-vit_b16}
COMMON="$(dirname "$0")/../common/zeroshot.sh"
[ "$#" -ge 1 ] || { echo "usage: bash scripts/zeroshot/base2new_test.sh DATASET [KEY VALUE ...]" >&2; exit 2; }
DATASET=$1
shift
bash "$COMMON" "$CFG" "$DATASET" base "$@"
bash "$COMMON" "$CFG" "$DATASET" new "$@"
