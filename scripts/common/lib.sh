# Shared by the protocol scripts: settings from the environment and the skip/resume rule.
#
#   DATA     datasets root                       (default: ./data in the repository)
#   OUTPUT   root of all run folders             (default: ./output in the repository)
#   SHOTS    training shots per class            (default: 16)
#   PYTHON   interpreter                         (default: python)
#
# A run folder holding result.json is finished and skipped; a folder without it is an
# interrupted run, and running the same command again resumes it from its last checkpoint.

set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
DATA=${DATA:-$REPO/data}
OUTPUT=${OUTPUT:-$REPO/output}
SHOTS=${SHOTS:-16}
PYTHON=${PYTHON:-python}

usage_unless() {  # usage_unless N "ARGS" "$@": exit with usage unless at least N arguments
  local need=$1 usage=$2 script=${0#"$REPO"/}
  shift 2
  if [ -n "${WRAPPER:-}" ]; then  # a method's wrapper passed TRAINER and CFG itself
    script=${WRAPPER#"$REPO"/}
    usage=${usage#TRAINER CFG }
  fi
  if [ "$#" -lt "$need" ]; then
    echo "usage: bash $script $usage" >&2
    exit 2
  fi
}

finished() {  # finished DIR: true (and says so) when DIR holds a finished run
  if [ -f "$1/result.json" ]; then
    echo "Skipping: $1 already holds a finished run (delete the folder to run it again)."
    return 0
  fi
  if [ -d "$1" ]; then
    echo "Resuming the unfinished run in $1"
  fi
  return 1
}

train_py() {  # train_py TRAINER CFG DATASET DIR [OPTIONS...] [KEY VALUE...]
  local trainer=$1 cfg=$2 dataset=$3 dir=$4
  shift 4
  "$PYTHON" train.py --root "$DATA" --trainer "$trainer" \
    --dataset-config-file "configs/datasets/$dataset.yaml" \
    --config-file "configs/trainers/$trainer/$cfg.yaml" \
    --output-dir "$dir" "$@"
}
