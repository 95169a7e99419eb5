"""Small PIL drawing helpers shared by the plots gankit writes (no plotting library needed)."""

from __future__ import annotations

from PIL import ImageFont


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (the fixed bitmap font before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()
