#!/usr/bin/env bash
# Zero-shot CLIP, cross-dataset / domain generalization: evaluate on all classes of DATASET
# (imagenet for the source column). Nothing is trained, so there is no seed. CFG overrides the config.
#   bash scripts/zeroshot/xd_test.sh DATASET [KEY VALUE ...]
set -euo pipefail
CFG=${CFG:-vit_b16}
[ "$#" -ge 1 ] || { echo "usage: bash scripts/zeroshot/xd_test.sh DATASET [KEY VALUE ...]" >&2; exit 2; }
DATASET=$1
shift
exec bash "$(dirname "$0")/../common/zeroshot.sh" "$CFG" "$DATASET" all "$@"
