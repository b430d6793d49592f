"""A sample image litesr draws itself (no download, no third-party picture) for ``litesr upscale --demo``.

A 256 x 256 scene with what super-resolution is judged on: lettering, straight and curved edges, one-pixel lines,
fine repeating texture (bricks, a fence, a checkerboard, a ring pattern), smooth gradients and some noise-like grass.
It is drawn at 2x with Pillow, antialiased down to 256 with litesr's MATLAB bicubic, and the low-resolution input is
the MATLAB bicubic downscale of that, as in the SR benchmarks. Fixed seed: the same pixels on every run (for a given
Pillow/FreeType, which render the lettering).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .images import Image

SIZE = 256
_SUPERSAMPLE = 2


def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw_scene(n: int) -> np.ndarray:
    """The scene at n x n, uint8 RGB."""
    rng = np.random.default_rng(2024)
    u = n / 256.0  # drawing coordinates are in 256-pixel units

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * u, y0 * u, x1 * u, y1 * u]

    # Sky: a vertical gradient from deep to pale blue; ground: green with per-pixel grass noise.
    yy = np.linspace(0.0, 1.0, n)[:, None]
    sky = np.stack([40 + 150 * yy, 90 + 130 * yy, 170 + 70 * yy], axis=2) * np.ones((1, n, 1))
    canvas = sky
    horizon = int(170 * u)
    grass = np.stack([60 + 0 * yy, 130 + 0 * yy, 50 + 0 * yy], axis=2) * np.ones((1, n, 1))
    blades = rng.normal(0.0, 1.0, (n, n // 2))
    blades = np.repeat(blades, 2, axis=1)[:, :n]  # taller than wide, like grass
    grass = grass + 28.0 * blades[:, :, None] * np.array([0.6, 1.0, 0.4])
    canvas[horizon:] = grass[horizon:]
    im = PILImage.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)

    # Sun with rings (curved edges and thin circles) and distant mountains (straight oblique edges).
    draw.ellipse(box(188, 18, 236, 66), fill=(255, 214, 90))
    for r in range(30, 46, 4):
        draw.ellipse(box(212 - r, 42 - r, 212 + r, 42 + r), outline=(255, 236, 170), width=max(1, int(0.6 * u)))
    draw.polygon([(0, 170 * u), (40 * u, 120 * u), (75 * u, 150 * u), (120 * u, 100 * u), (170 * u, 170 * u)],
                 fill=(92, 100, 130))
    draw.polygon([(110 * u, 170 * u), (160 * u, 125 * u), (210 * u, 170 * u)], fill=(120, 126, 150))
    draw.polygon([(120 * u, 100 * u), (108 * u, 112 * u), (134 * u, 114 * u)], fill=(240, 242, 250))  # snow cap

    # A brick house: mortar lines every few pixels, a window with one-pixel mullions, a roof.
    draw.rectangle(box(20, 140, 100, 210), fill=(168, 74, 52))
    for row, y in enumerate(np.arange(140, 210, 5.0)):
        draw.line([(20 * u, y * u), (100 * u, y * u)], fill=(225, 215, 200), width=max(1, int(0.7 * u)))
        for x in np.arange(20 + (row % 2) * 5, 100, 10.0):
            draw.line([(x * u, y * u), (x * u, (y + 5) * u)], fill=(225, 215, 200), width=max(1, int(0.7 * u)))
    draw.polygon([(14 * u, 140 * u), (60 * u, 112 * u), (106 * u, 140 * u)], fill=(70, 50, 45))
    draw.rectangle(box(34, 156, 58, 180), fill=(250, 236, 160), outline=(40, 30, 30), width=int(1.2 * u))
    draw.line([(46 * u, 156 * u), (46 * u, 180 * u)], fill=(40, 30, 30), width=int(u))
    draw.line([(34 * u, 168 * u), (58 * u, 168 * u)], fill=(40, 30, 30), width=int(u))
    draw.rectangle(box(70, 170, 86, 210), fill=(90, 60, 40))

    # A picket fence of thin vertical lines, and power lines: near-horizontal one-pixel lines (aliasing tests).
    for x in np.arange(108, 250, 3.5):
        draw.line([(x * u, 188 * u), (x * u, 214 * u)], fill=(245, 245, 240), width=max(1, int(0.9 * u)))
    draw.line([(108 * u, 194 * u), (250 * u, 194 * u)], fill=(245, 245, 240), width=int(u))
    for k in range(3):
        draw.line([(0, (76 + 5 * k) * u), (256 * u, (88 + 7 * k) * u)], fill=(35, 35, 45), width=max(1, int(0.5 * u)))

    # A checkerboard and a ring pattern whose rings get finer outwards (from easy to unrecoverable).
    for i in range(8):
        for j in range(8):
            colour = (20, 20, 20) if (i + j) % 2 else (235, 235, 235)
            draw.rectangle(box(200 + 5 * j, 218 + 4.5 * i, 205 + 5 * j, 222.5 + 4.5 * i), fill=colour)
    canvas = np.asarray(im).astype(np.float64)
    cy, cx, radius = 218 * u, 40 * u, 28 * u
    ys, xs = np.mgrid[0:n, 0:n]
    rr = np.hypot(ys - cy, xs - cx)
    inside = rr < radius
    rings = 0.5 + 0.5 * np.cos(np.pi * (rr / u) ** 2 / 100.0)  # local frequency r/100 cycles per pixel
    canvas[inside] = (rings[inside, None] * np.array([250.0, 250.0, 250.0]) +
                      (1 - rings[inside, None]) * np.array([30.0, 40.0, 90.0]))
    im = PILImage.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)

    # Lettering: a title and a line of small type with digits.
    draw.text((10 * u, 8 * u), "litesr", fill=(255, 255, 255), font=label_font(int(34 * u)), stroke_width=int(u),
              stroke_fill=(20, 30, 60))
    draw.text((12 * u, 50 * u), "super-resolution 0123456789", fill=(250, 250, 210), font=label_font(int(11 * u)))
    return np.asarray(im)


def sample_hr() -> np.ndarray:
    """The 256 x 256 sample scene, float32 (H, W, 3) in [0, 1]."""
    return _sample_hr().copy()


@functools.lru_cache(maxsize=1)
def _sample_hr() -> np.ndarray:
    from .imresize import imresize

    big = torch.from_numpy(_draw_scene(SIZE * _SUPERSAMPLE).copy()).permute(2, 0, 1).double() / 255.0
    small = imresize(big, size=(SIZE, SIZE)).clamp(0.0, 1.0)
    small = torch.round(small * 255.0) / 255.0  # an 8-bit picture, like the HR images of the benchmarks
    return small.permute(1, 2, 0).float().numpy()


def sample_image(scale: int = 2) -> Image:
    """The low-resolution input for ``litesr upscale --demo``: the sample scene bicubic-downscaled by ``scale``
    (MATLAB ``imresize``, 8-bit), as an :class:`~litesr.images.Image`."""
    from .imresize import imresize

    hr = torch.from_numpy(sample_hr()).permute(2, 0, 1).double()
    size = (SIZE // scale, SIZE // scale)
    lr = torch.round(imresize(hr, size=size).clamp(0.0, 1.0) * 255.0) / 255.0
    return Image(rgb=lr.permute(1, 2, 0).float().contiguous().numpy(), bit_depth=8, mode="RGB", format="PNG")
