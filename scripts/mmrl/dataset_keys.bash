# Sourced by the wrappers (not a protocol step, hence not .sh).
# MMRL's per-dataset settings from the authors' code (their trainers/config.py, applied to every
# protocol): `dataset_keys DATASET` prints KEY VALUE pairs that the wrappers put before the user's.
dataset_keys() {
  case "$1" in
    stanford_cars) echo TRAINER.MMRL.REG_WEIGHT 7.0 ;;
    fgvc_aircraft | sun397 | dtd) echo TRAINER.MMRL.REG_WEIGHT 6.0 ;;
    food101) echo TRAINER.MMRL.REG_WEIGHT 5.0 ;;
    oxford_flowers) echo TRAINER.MMRL.REG_WEIGHT 4.0 ;;
    ucf101) echo TRAINER.MMRL.REG_WEIGHT 3.0 ;;
    imagenet | caltech101) echo TRAINER.MMRL.REG_WEIGHT 0.5 ;;
    oxford_pets) echo TRAINER.MMRL.REG_WEIGHT 0.2 ;;
    eurosat) echo TRAINER.MMRL.REP_DIM 2048 TRAINER.MMRL.REG_WEIGHT 0.01 ;;
  esac
}
