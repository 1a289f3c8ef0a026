"""Images as 8-bit RGB, whatever their bit depth.

PIL's `convert("RGB")` clips a 16-bit grayscale image (mode "I;16", or "I" in older Pillow) at 255,
so a 16-bit PNG reads as white. `read_rgb` scales such an image to 8 bits first (65535 -> 255, as
PIL already does for 16-bit RGB PNGs), and refuses integer pixels above 16 bits in one line rather
than guess their range.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def read_rgb(path: str | os.PathLike) -> Image.Image:
    with Image.open(path) as image:
        if image.mode in (*SIXTEEN_BIT_MODES, "I"):
            values = np.asarray(image, dtype=np.float64)
            if image.mode == "I" and values.size and (values.max() > 65535 or values.min() < 0):
                raise ValueError("32-bit integer pixels (PIL mode I) above 65535: not an 8- or 16-bit image")
            return Image.fromarray(np.round(values / 257).astype(np.uint8)).convert("RGB")
        return image.convert("RGB")
