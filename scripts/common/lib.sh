# Shared by the protocol scripts: settings from the environment and the skip/resume rule.
#
#   DATA     datasets root                       (default: ./data in the repository)
#   OUTPUT   root of all run folders             (default: ./output in the repository)
#   SHOTS    training shots per class            (default: 16)
#   PYTHON   interpreter                         (default: python)
#   TAG      names a variant of the method (e.g. TAG=lr0.1 with OPTIM.LR 0.1): its own folder, its own row
#   DRY_RUN  when set, print the train.py command (shell-quoted) instead of running it
#   CHECK_ONLY  when set, only compare a finished run's configuration (the driver's SLURM launcher)
#
# A run folder whose result.json parses and records this run is finished: train.py (--skip-finished)
# skips it when this command's configuration is the same (clipprompt/results/identity.py), and
# refuses it (exit 2, naming the differing keys) when not: name the variant with TAG. What is
# compared: the resolved configuration less the keys that cannot change the result, the backbone by
# its file's sha256, and the tag; train.py answers at once, before torch loads, when result.json's
# inputs_digest (the trainer, the config files' bytes, the overrides, seed, tag, protocol, part and
# a fingerprint of the code holding the defaults) is this command's, and resolves the configuration
# otherwise (docs/runs.md). Any other folder is an interrupted run, and running the same command
# again resumes it from its last checkpoint. Folder paths come from clipprompt/results/layout.py
# (`run_folder`). The keys the protocol sets (DATASET.NUM_SHOTS, DATASET.SUBSAMPLE_CLASSES, SEED,
# DATASET.NAME) are refused as extra arguments before anything runs (exit 2): SHOTS=, the SEED and
# DATASET arguments say them. Per run the scripts ask python twice (layout dir, layout finished).

set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
DATA=${DATA:-$REPO/data}
OUTPUT=${OUTPUT:-$REPO/output}
SHOTS=${SHOTS:-16}
PYTHON=${PYTHON:-python}
TAG=${TAG:-}
SKIP_FINISHED=

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

run_folder() {  # run_folder PROTOCOL PART TRAINER CFG DATASET SHOTS [SEED]: sets DIR, RUN_PROTOCOL, RUN_PART
  # The layout is defined once, in clipprompt/results/layout.py.
  local line
  line=$("$PYTHON" -m clipprompt.results.layout dir "$OUTPUT" "$@" ${TAG:+--tag "$TAG"}) || exit 2
  IFS=$'\t' read -r DIR RUN_PROTOCOL RUN_PART <<<"$line"
  RUN_KEY=("$@") RUN_TRAINER=$3 RUN_CFG=$4 RUN_DATASET=$5 RUN_SEED=${7:-}
}

before_run() {  # before_run [KEY VALUE ...]: the user's overrides; checks them and whether $DIR is finished
  if [ -n "${PRINT_DIR:-}" ]; then  # the protocol driver asks where the run lives: say it, run nothing
    (IFS=$'\t'; echo "$DIR${IFS}${RUN_KEY[*]}")
    exit 0
  fi
  # one question (clipprompt/results/layout.py): 2 for a protocol-owned override, 0 for a finished run
  # of this key, which train.py --skip-finished then compares (skips the same, refuses another)
  local status=0
  "$PYTHON" -m clipprompt.results.layout finished "$DIR" --trainer "$RUN_TRAINER" --dataset "$RUN_DATASET" \
    --protocol "$RUN_PROTOCOL" --part "$RUN_PART" --config "$RUN_CFG" ${RUN_SEED:+--seed "$RUN_SEED"} \
    ${TAG:+--tag "$TAG"} -- "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    SKIP_FINISHED=--skip-finished
  elif [ "$status" -ne 1 ]; then
    exit 2
  elif [ -n "${CHECK_ONLY:-}" ]; then  # the driver asks only whether a finished run is this run
    exit 0
  fi
}

train_py() {  # train_py TRAINER CFG DATASET DIR [OPTIONS...] [KEY VALUE...]
  local trainer=$1 cfg=$2 dataset=$3 dir=$4
  shift 4
  local command=("$PYTHON" train.py --root "$DATA" --trainer "$trainer"
    --dataset-config-file "configs/datasets/$dataset.yaml"
    --config-file "configs/trainers/$trainer/$cfg.yaml"
    --output-dir "$dir" --protocol "$RUN_PROTOCOL" --part "$RUN_PART" ${TAG:+--tag "$TAG"} $SKIP_FINISHED "$@")
  if [ -n "${DRY_RUN:-}" ]; then
    printf '%q ' "${command[@]}"
    echo
    return 0
  fi
  "${command[@]}"
}
