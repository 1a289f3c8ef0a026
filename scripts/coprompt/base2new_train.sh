#!/usr/bin/env bash
# CoPrompt: base2new_train (see scripts/common/base2new_train.sh). CFG overrides the config; by default the authors'
# per-dataset setting (their trainers/constants.py: prompt depth, context length, consistency weight W,
# Food101's 5 epochs), one config each. The class descriptions must be prepared first:
#   python -m clipprompt.data.prepare DATASET --root $DATA --descriptions coprompt
#   bash scripts/coprompt/base2new_train.sh DATASET SEED [KEY VALUE ...]
case "${1:-}" in
  imagenet | sun397) default=vit_b16_ep8_d12_c4_w8 ;;
  caltech101 | stanford_cars) default=vit_b16_ep8_d12_c4_w4 ;;
  oxford_pets | eurosat) default=vit_b16_ep8_d12_c2_w0.1 ;;
  oxford_flowers) default=vit_b16_ep8_d9_c4_w8 ;;
  food101) default=vit_b16_ep5_d9_c4_w0.5 ;;
  fgvc_aircraft) default=vit_b16_ep8_d9_c4_w2 ;;
  dtd) default=vit_b16_ep8_d12_c2_w8 ;;
  ucf101) default=vit_b16_ep8_d12_c4_w2 ;;
  *) default=vit_b16_ep8 ;;
esac
CFG=${CFG:-$default}
WRAPPER="$0" exec bash "$(dirname "$0")/../common/base2new_train.sh" CoPrompt "$CFG" "$@"
