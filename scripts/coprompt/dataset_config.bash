# CoPrompt's per-dataset setting (the authors' trainers/constants.py: prompt depth, context length,
# consistency weight W, Food101's 5 epochs), one config each; sourced by the base-to-new wrappers.
dataset_config() {  # dataset_config DATASET: the config name the authors' setting of DATASET is
  case "$1" in
    imagenet | sun397) echo vit_b16_ep8_d12_c4_w8 ;;
    caltech101 | stanford_cars) echo vit_b16_ep8_d12_c4_w4 ;;
    oxford_pets | eurosat) echo vit_b16_ep8_d12_c2_w0.1 ;;
    oxford_flowers) echo vit_b16_ep8_d9_c4_w8 ;;
    food101) echo vit_b16_ep5_d9_c4_w0.5 ;;
    fgvc_aircraft) echo vit_b16_ep8_d9_c4_w2 ;;
    dtd) echo vit_b16_ep8_d12_c2_w8 ;;
    ucf101) echo vit_b16_ep8_d12_c4_w2 ;;
    *) echo vit_b16_ep8 ;;
  esac
}
