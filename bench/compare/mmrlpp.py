"""MMRL++ against the authors' code (yunncheng/MMRL, `trainers/mmrlpp.py` on `clip/model_mmrlpp.py`);
see mmrl.py, which compares both.

    python bench/compare/mmrlpp.py /tmp/mmrl-code
    python bench/compare/mmrlpp.py /tmp/mmrl-code --speed

Their low-rank factors B (the maps' residuals and the projection's) start at zero, which would leave
their partners A without a gradient on both sides: the comparison draws them at random (N(0, 0.02²))
before copying their learned tensors into ours, so every gradient is compared. Settings: α 0.7, λ 1.0,
β 0.9 (their default) and α 0.6, λ 0.5, β 0.3; RES_LORA_DIM 4, PROJ_LORA_DIM 64.
"""

import sys

from mmrl import MMRLPP_VARIANT, main

if __name__ == "__main__":
    sys.exit(main(MMRLPP_VARIANT))
