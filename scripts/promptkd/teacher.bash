# Sourced by the PromptKD wrappers: the student's defaults and where its teacher lives.
#   TEACHER        the teacher: a PromptSRC run folder or checkpoint file, ours or the authors' (model-best.pth.tar)
#                  (default: the run of teacher_train.sh / teacher_xd_train.sh for this dataset, TEACHER_SEED)
#   TEACHER_SEED   the seed of that teacher run (default 1: one teacher per dataset, as the authors release)
#   TEACHER_SHOTS  the shots that teacher was trained with (default 16)
#   SHOTS          the student's training images per class (default 0: every training image, as the authors)
TEACHER_CFG=vit_l14_c2_ep20_batch8_4+4ctx
TEACHER_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SHOTS=${SHOTS:-0}

teacher_args() {  # teacher_args PROTOCOL PART DATASET: prints the student's keys for its teacher and dataset
  local protocol=$1 part=$2 dataset=$3 folder
  if [ -n "${TEACHER:-}" ]; then
    folder=$TEACHER
  else
    folder=$(cd "$TEACHER_REPO" && "${PYTHON:-python}" -m clipprompt.results.layout dir \
      "${OUTPUT:-$TEACHER_REPO/output}" "$protocol" "$part" PromptSRC "$TEACHER_CFG" "$dataset" "${TEACHER_SHOTS:-16}" \
      "${TEACHER_SEED:-1}" | cut -f1) || exit 2
  fi
  case "$dataset" in
    fgvc_aircraft|oxford_flowers|dtd) weight=200.0 ;;  # the authors' scripts
    *) weight=1000.0 ;;
  esac
  printf '%s\n' TRAINER.PROMPTKD.TEACHER_CHECKPOINT "$folder" TRAINER.PROMPTKD.KD_WEIGHT "$weight"
}
