# Sourced by the wrappers (not a protocol step, hence not .sh).
# MMRL++'s per-dataset settings from the authors' code (their trainers/config.py): `dataset_keys TASK DATASET`
# prints KEY VALUE pairs that the wrappers put before the user's. TASK b2n (base-to-new and few-shot: BETA
# and REG_WEIGHT) or xd (cross-dataset and domain generalization: BETA of the evaluated dataset, and
# ImageNet's REG_WEIGHT for the source model).
dataset_keys() {
  local K=TRAINER.MMRLPP
  if [ "$1" = b2n ]; then
    case "$2" in
      imagenet) echo $K.BETA 0.9 $K.REG_WEIGHT 0.2 ;;
      fgvc_aircraft) echo $K.BETA 0.9 $K.REG_WEIGHT 2.0 ;;
      ucf101) echo $K.BETA 0.9 $K.REG_WEIGHT 3.0 ;;
      dtd) echo $K.BETA 0.9 $K.REG_WEIGHT 7.0 ;;
      oxford_pets) echo $K.BETA 0.7 $K.REG_WEIGHT 0.01 ;;
      stanford_cars) echo $K.BETA 0.7 $K.REG_WEIGHT 6.0 ;;
      caltech101) echo $K.BETA 0.6 $K.REG_WEIGHT 3.0 ;;
      sun397) echo $K.BETA 0.5 $K.REG_WEIGHT 3.0 ;;
      oxford_flowers) echo $K.BETA 0.4 $K.REG_WEIGHT 7.0 ;;
      eurosat) echo $K.BETA 0.2 $K.REG_WEIGHT 0.01 ;;
      food101) echo $K.BETA 0.1 $K.REG_WEIGHT 1.0 ;;
    esac
  else
    case "$2" in
      imagenet) echo $K.BETA 0.9 $K.REG_WEIGHT 0.1 ;;
      imagenetv2 | imagenet_r | fgvc_aircraft | ucf101) echo $K.BETA 0.9 ;;
      imagenet_a) echo $K.BETA 0.8 ;;
      imagenet_sketch | sun397) echo $K.BETA 0.7 ;;
      oxford_pets | caltech101) echo $K.BETA 0.6 ;;
      dtd) echo $K.BETA 0.5 ;;
      oxford_flowers) echo $K.BETA 0.4 ;;
      stanford_cars | eurosat | food101) echo $K.BETA 0.3 ;;
    esac
  fi
}
