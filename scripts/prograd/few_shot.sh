#!/usr/bin/env bash
# ProGrad: few_shot (see scripts/common/few_shot.sh). CFG overrides the config; by default the
# authors' schedule for the shots: rn50_ep50 for 1-2 shots, rn50_ep100 for 4, rn50 (200 epochs) for 8-16.
#   bash scripts/prograd/few_shot.sh DATASET SEED SHOTS [KEY VALUE ...]
case "${3:-}" in
  1|2) default=rn50_ep50 ;;
  4) default=rn50_ep100 ;;
  *) default=rn50 ;;
esac
CFG=${CFG:-$default}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/few_shot.sh" ProGrad "$CFG" "$@"
