#!/usr/bin/env bash
# CoPrompt: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config; by default the
# authors' per-dataset setting (dataset_config.bash). The class descriptions must be prepared first:
#   python -m clipprompt.data.prepare DATASET --root $DATA --descriptions coprompt
#   bash scripts/coprompt/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "$0")/dataset_config.bash"
CFG=${CFG:-$(dataset_config "${1:-}")}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" CoPrompt "$CFG" "$@"
