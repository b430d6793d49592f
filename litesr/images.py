"""Reading and writing images: PNG, JPEG, BMP, TIFF and WebP; 8 and 16 bits; gray, gray+alpha, RGB, RGBA, palette.

Pixels come out as float32 in [0, 1] with the alpha channel kept apart (SR models see colour only; alpha is upscaled
on its own and re-attached). Pillow does the decoding, with two gaps filled here:

- Pillow 13 has no 16-bit RGB mode: it decodes 48/64-bit PNG and TIFF to 8 bits by keeping the high byte of each
  sample. :func:`read_image` decodes such files a second time with the byte order swapped (so the unpacker keeps the
  low byte) and combines both passes into exact 16-bit values; the PNG/TIFF un-filtering still runs in Pillow's C code.
- Pillow cannot write 16-bit colour either: 16-bit PNG and TIFF are written by the small encoders at the end of this
  module (zlib, per-row adaptive PNG filters; deflate-compressed baseline TIFF).

Every failure is an :class:`~litesr.errors.ImageError` with one line that names the file and the problem, and writes
are atomic (a temporary file in the target folder renamed over the target), so a failure never leaves half a file.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from .errors import ConfigError, ImageError
from .fileio import atomic_write_bytes

# Formats read (Pillow's names) and written (file suffix -> Pillow's name).
READ_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "TIFF", "WEBP", "GIF", "PPM", "TGA")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP"}
IMAGE_SUFFIXES = (*WRITE_FORMATS, ".gif", ".ppm", ".pgm", ".pnm", ".tga")
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
# JPEG has no alpha; BMP's 32-bit alpha is ignored by most readers, Pillow included.
_NO_ALPHA_FORMATS = ("JPEG", "BMP")

# Refuse larger images unless raised (--max-pixels / LITESR_MAX_PIXELS): 64 MP is an 8000x8000 photo, whose x4
# float32 result alone takes 3 GB.
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "LITESR_MAX_PIXELS"

# Pillow's rawmodes that mean "16 bits per sample, decoded to 8": the rawmode that keeps the low byte instead.
_LOW_BYTE_RAWMODE = {
    "RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B", "RGBA;16B": "RGBA;16L", "RGBA;16L": "RGBA;16B",
    "RGB;16N": "RGB;16B" if sys.byteorder == "little" else "RGB;16L",
    "RGBA;16N": "RGBA;16B" if sys.byteorder == "little" else "RGBA;16L",
}
# 16-bit gray+alpha PNG: Pillow keeps the high bytes as RGBA; reading the same 4 bytes per pixel as 8-bit RGBA gives
# (gray high, gray low, alpha high, alpha low).
_GRAY_ALPHA_16 = "LA;16B"

_EXIF_ORIENTATION = 0x0112
# What Pillow raises on broken files (it has no exception class of its own for them).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error, zlib.error)


@dataclass
class Image:
    """A decoded image. ``rgb`` is float32 (H, W, 1 or 3) in [0, 1]; ``alpha`` is float32 (H, W) or None.

    ``bit_depth`` (8 or 16) is what the file stored and what :func:`write_image` writes back by default; ``mode`` is
    the layout it was stored in (Pillow's mode, or ``"RGB;16"``/``"RGBA;16"``/``"LA;16"`` for 16-bit colour).
    EXIF orientation has already been applied to the pixels (and removed from ``exif``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    mode: str = "RGB"
    format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def channels(self) -> int:
        """Colour channels (1 or 3), alpha not counted."""
        return int(self.rgb.shape[2])

    @property
    def is_gray(self) -> bool:
        return self.channels == 1

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None) -> Image:
        """A copy with other pixels and the same metadata (format, bit depth, colour profile, EXIF)."""
        return replace(self, rgb=rgb, alpha=alpha)


# ----------------------------------------------------------------------------------------------------------- reading


def resolve_max_pixels(max_pixels: int | None = None) -> int | None:
    """The pixel limit in force: the argument, else ``$LITESR_MAX_PIXELS``, else the default; 0 means no limit."""
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(float(raw))
        except ValueError:
            raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r} is not a number of pixels") from None
    if max_pixels < 0:
        raise ConfigError(f"the pixel limit must be >= 0 (0 = no limit), not {max_pixels}")
    return max_pixels or None


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> Image:
    """Decode ``path`` into an :class:`Image` (EXIF orientation applied).

    Images with more than ``max_pixels`` pixels are refused before decoding (default: ``$LITESR_MAX_PIXELS`` or
    64 MP; 0 = no limit), which also stops decompression bombs: a few KB that claim a gigapixel.
    """
    path = Path(path)
    limit = resolve_max_pixels(max_pixels)
    _check_readable(path)
    try:
        with _open_pillow(path) as im:
            fmt = im.format or "?"
            if fmt not in READ_FORMATS:
                raise ImageError(f"{path}: unsupported image format {fmt} (litesr reads PNG, JPEG, BMP, TIFF, WebP)")
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:  # upscaling the first frame alone would silently drop the others
                raise ImageError(f"{path}: animated or multi-page {fmt} ({frames} frames); litesr upscales still "
                                 "images: extract the frames first (e.g. ffmpeg -i IN frame%03d.png)")
            width, height = im.size
            if limit is not None and width * height > limit:
                raise ImageError(
                    f"{path}: image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,} "
                    f"(a decompression bomb, or a huge image: raise it with --max-pixels N or {MAX_PIXELS_ENV}=N)"
                )
            if width == 0 or height == 0:
                raise ImageError(f"{path}: image has no pixels ({width}x{height})")
            color, alpha, depth, mode = _decode(im, path)
            icc = im.info.get("icc_profile") or None
            exif = im.getexif()
            orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
            if _EXIF_ORIENTATION in exif:
                del exif[_EXIF_ORIENTATION]  # the pixels are turned upright below; viewers must not turn them again
            exif_bytes = exif.tobytes() if len(exif) else None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: {_sniff(path)}") from None
    except PILImage.DecompressionBombError as exc:  # Pillow's check in a plugin's load, past its own limit
        raise ImageError(f"{path}: refused by Pillow's decompression-bomb check ({_one_line(exc)})") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode this image") from None

    color, alpha = _orient(color, orientation), (None if alpha is None else _orient(alpha, orientation))
    scale = 65535.0 if depth == 16 else 255.0
    rgb = np.ascontiguousarray(color, dtype=np.float32) / np.float32(scale)
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    alpha_f = None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32) / np.float32(scale)
    return Image(rgb=rgb, alpha=alpha_f, bit_depth=depth, mode=mode, format=fmt, icc_profile=icc, exif=exif_bytes)


def _check_readable(path: Path) -> None:
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({_one_line(exc)})") from None
    if size == 0:
        raise ImageError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{path}: permission denied")


_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_pillow(path: Path) -> PILImage.Image:
    """``PIL.Image.open`` (header only) with Pillow's own bomb check out of the way: ours, with its clearer message
    and its own limit, runs right after. Pillow warns past its limit and refuses past twice it; only in that rare
    case is its global limit lifted, for the header, under a lock."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            return PILImage.open(path)
        except PILImage.DecompressionBombError:
            pass
        with _PILLOW_LIMIT_LOCK:
            saved = PILImage.MAX_IMAGE_PIXELS
            PILImage.MAX_IMAGE_PIXELS = None
            try:
                return PILImage.open(path)
            finally:
                PILImage.MAX_IMAGE_PIXELS = saved


def _decode(im: PILImage.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None, int, str]:
    """(colour HxW or HxWx3 uint8/uint16, alpha or None, bit depth, mode name) of the first frame."""
    mode = im.mode
    rawmodes = {_tile_rawmode(t) for t in (im.tile or [])}
    if mode in ("RGB", "RGBA") and rawmodes and rawmodes <= set(_LOW_BYTE_RAWMODE):
        data = _decode_16bit_colour(im, path, rawmodes.pop())
        return (data[..., :3], data[..., 3], 16, "RGBA;16") if mode == "RGBA" else (data, None, 16, "RGB;16")
    if mode == "RGBA" and rawmodes == {_GRAY_ALPHA_16}:
        raw = _decode_with_rawmode(path, {_GRAY_ALPHA_16: "RGBA"}).astype(np.uint16)
        return raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3], 16, "LA;16"
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), None, 16, "I;16"
    if mode == "I":  # 32-bit integer gray (some 16-bit TIFFs): keep the 16-bit range
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16), None, 16, mode
    if mode == "F":  # float gray, taken as [0, 1]
        values = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0)
        return np.round(np.clip(values, 0.0, 1.0) * 65535).astype(np.uint16), None, 16, mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L")), None, 8, mode
    if mode in ("LA", "La"):
        arr = np.asarray(im.convert("LA"))
        return arr[..., 0], arr[..., 1], 8, mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        return (arr[..., :3], arr[..., 3], 8, mode) if has_alpha else (arr, None, 8, mode)
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGBA"))
        return arr[..., :3], arr[..., 3], 8, mode
    if mode in ("RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(im.convert("RGB")), None, 8, mode
    raise ImageError(f"{path}: unsupported pixel layout {mode!r}")


def _tile_rawmode(tile: Any) -> str:
    args = tile.args if hasattr(tile, "args") else tile[3]
    return args if isinstance(args, str) else str(args[0])


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile.args if hasattr(tile, "args") else tile[3]
    args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    return tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args)


def _decode_with_rawmode(path: Path, swap: dict[str, str]) -> np.ndarray:
    """Decode ``path`` again with each tile's rawmode replaced through ``swap`` (same bits per pixel, other bytes)."""
    with PILImage.open(path) as again:
        again.tile = [_with_rawmode(t, swap[_tile_rawmode(t)]) for t in again.tile]
        again.load()
        return np.asarray(again)


def _decode_16bit_colour(im: PILImage.Image, path: Path, rawmode: str) -> np.ndarray:
    high = np.asarray(im).astype(np.uint16)
    low = _decode_with_rawmode(path, _LOW_BYTE_RAWMODE)
    if low.shape != high.shape:  # pragma: no cover - would mean Pillow changed how it decodes these files
        raise ImageError(f"{path}: cannot decode 16-bit {rawmode} with this Pillow version")
    return high << 8 | low.astype(np.uint16)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W[, C]) array, as ``ImageOps.exif_transpose`` does."""
    swap = (1, 0, *range(2, arr.ndim))
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(swap)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].transpose(swap)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _sniff(path: Path) -> str:
    """Why Pillow could not identify the file, in a few words."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return f"cannot read ({_one_line(exc)})"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "corrupt PNG file (its header cannot be parsed)"
    if head.startswith(b"\xff\xd8"):
        return "corrupt JPEG file (its header cannot be parsed)"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "not an image: it is a text file"
        except UnicodeDecodeError:
            pass
    return "not an image file, or a format litesr does not read (PNG, JPEG, BMP, TIFF, WebP)"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


# ----------------------------------------------------------------------------------------------------------- writing


def format_for_path(path: str | os.PathLike, format: str | None = None) -> str:
    """Pillow's format name for an output path (``.png`` -> ``PNG``), or for an explicit ``format`` such as ``jpg``."""
    if format:
        key = "." + format.lower().lstrip(".")
        if key not in WRITE_FORMATS:
            raise ImageError(f"{path}: cannot write format {format!r} (use png, jpg, bmp, tif or webp)")
        return WRITE_FORMATS[key]
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ImageError(f"{path}: unknown image suffix {suffix or '(none)'!r} (use .png, .jpg, .bmp, .tif or .webp)")
    return WRITE_FORMATS[suffix]


def write_image(
    path: str | os.PathLike,
    image_or_array: Image | np.ndarray | Any,
    *,
    bit_depth: int | None = None,
    format: str | None = None,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> Path:
    """Write an :class:`Image`, or an array (H, W[, 1-4]) / tensor ((1,) C, H, W), atomically; returns the path.

    Arrays may be float in [0, 1], uint8 or uint16. ``format`` defaults to the suffix. ``bit_depth`` defaults to the
    image's (16 for uint16 arrays); PNG and TIFF store 16 bits, other formats get 8 (asking them for 16 is an error).
    JPEG and BMP keep no alpha: transparent images are laid over white. An :class:`Image`'s colour profile and EXIF
    are kept.
    """
    path = Path(path)
    fmt = format_for_path(path, format)
    color, alpha, source_depth = _split_channels(image_or_array, path)
    if isinstance(image_or_array, Image):
        icc_profile = icc_profile if icc_profile is not None else image_or_array.icc_profile
        exif = exif if exif is not None else image_or_array.exif
    if bit_depth not in (None, 8, 16):
        raise ImageError(f"{path}: bit depth must be 8 or 16, not {bit_depth}")
    if bit_depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        raise ImageError(f"{path}: {fmt} stores 8 bits per channel; write PNG or TIFF for 16 bits")
    depth = bit_depth or (source_depth if fmt in SIXTEEN_BIT_FORMATS else 8)
    if fmt in _NO_ALPHA_FORMATS and alpha is not None:
        color = color * alpha[..., None] + (1.0 - alpha[..., None])  # over white
        alpha = None
    if not 1 <= quality <= 100:
        raise ImageError(f"{path}: quality must be 1..100, not {quality}")

    maxval = 65535.0 if depth == 16 else 255.0
    planes = [color] if alpha is None else [color, alpha[..., None]]
    pixels = np.concatenate(planes, axis=2) if len(planes) > 1 else color
    pixels = np.round(np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0) * maxval)
    pixels = pixels.astype(np.uint16 if depth == 16 else np.uint8)

    if depth == 16 and fmt == "PNG":
        data = encode_png16(pixels, icc_profile=icc_profile, exif=exif)
    elif depth == 16:
        if pixels.shape[2] == 2:  # 16-bit gray+alpha TIFF is legal, but Pillow (and so litesr) cannot read it back
            pixels = pixels[..., [0, 0, 0, 1]]
        data = encode_tiff16(pixels, icc_profile=icc_profile)
    else:
        data = _encode_pillow(pixels, fmt, quality=quality, icc_profile=icc_profile, exif=exif)
    write_bytes_atomically(path, data)
    return path


def _split_channels(image: Any, path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(colour float HxWx1|3, alpha float HxW or None, natural bit depth) of anything write_image accepts."""
    if isinstance(image, Image):
        return image.rgb.astype(np.float32, copy=False), image.alpha, image.bit_depth
    if hasattr(image, "detach"):  # a torch tensor, (C, H, W) or (1, C, H, W)
        image = image.detach().float().cpu().numpy()
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3:
            raise ImageError(f"{path}: expected a (C, H, W) tensor, got shape {tuple(image.shape)}")
        image = image.transpose(1, 2, 0)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{path}: cannot write an array of shape {arr.shape} (expected H x W x 1..4)")
    if arr.dtype == np.uint8:
        values, depth = arr.astype(np.float32) / 255.0, 8
    elif arr.dtype == np.uint16:
        values, depth = arr.astype(np.float32) / 65535.0, 16
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool:
        values, depth = arr.astype(np.float32), 8
    else:
        raise ImageError(f"{path}: cannot write pixels of type {arr.dtype} (use float in [0, 1], uint8 or uint16)")
    if values.shape[2] in (2, 4):
        return values[..., :-1], values[..., -1], depth
    return values, None, depth


def _encode_pillow(pixels: np.ndarray, fmt: str, *, quality: int, icc_profile: bytes | None,
                   exif: bytes | None) -> bytes:
    channels = pixels.shape[2]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    im = PILImage.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    if fmt == "WEBP" and mode == "LA":
        im = im.convert("RGBA")
    if fmt == "WEBP" and mode == "L":
        im = im.convert("RGB")
    options: dict[str, Any] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["exif"] = exif
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        options.update(quality=quality, lossless=quality == 100, exact=True)  # exact: keep colour under alpha 0
    elif fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    elif fmt == "PNG":
        options["compress_level"] = 6
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write through litesr's atomic writer (temp file + rename), failures as one ImageError line naming the file."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({_one_line(exc)})") from None


# ------------------------------------------------------------------------------------------ 16-bit PNG / TIFF writers


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


_SIGNED_MAGNITUDE = np.minimum(np.arange(256), 256 - np.arange(256)).astype(np.uint8)  # |byte as int8|


def _png_filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Filter each row (H, N bytes) with the PNG filter (None/Sub/Up/Average/Paeth) that gives the smallest sum of
    absolute signed residues (libpng's heuristic); returns (H, 1 + N) bytes with the filter type first."""
    x = np.ascontiguousarray(rows, dtype=np.uint8)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    up_left = np.zeros_like(x)
    up_left[1:, bpp:] = x[:-1, :-bpp]
    # Paeth predictor without forming p = left + up - up_left: |p - left| = |up - up_left| and so on.
    a, b, c = left.astype(np.int16), up.astype(np.int16), up_left.astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    del a, b, c, pa, pb, pc
    average = ((left.astype(np.uint16) + up) >> 1).astype(np.uint8)
    best = np.zeros(x.shape[0], dtype=np.uint8)
    chosen = x.copy()
    best_cost = _SIGNED_MAGNITUDE[x].sum(axis=1, dtype=np.int64)
    for kind, predictor in ((1, left), (2, up), (3, average), (4, paeth)):
        residue = x - predictor  # uint8 arithmetic wraps modulo 256, as PNG wants
        cost = _SIGNED_MAGNITUDE[residue].sum(axis=1, dtype=np.int64)
        better = cost < best_cost
        best[better], best_cost[better], chosen[better] = kind, cost[better], residue[better]
    return np.concatenate([best[:, None], chosen], axis=1)


def encode_png16(pixels: np.ndarray, *, icc_profile: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by the channel count) of a uint16 (H, W, C) array."""
    h, w, c = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))]
    if icc_profile:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(_png_filter_rows(rows, bpp=c * 2).tobytes(), 6)))
    chunks.append(_png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def encode_tiff16(pixels: np.ndarray, *, icc_profile: bytes | None = None) -> bytes:
    """A 16-bit baseline TIFF (little-endian, one deflate-compressed strip) of a uint16 (H, W, C) array."""
    h, w, c = pixels.shape
    strip = zlib.compress(np.ascontiguousarray(pixels, dtype="<u2").tobytes(), 6)
    short, long_, undefined = 3, 4, 7
    tags: list[tuple[int, int, list[int] | bytes]] = [
        (256, long_, [w]), (257, long_, [h]), (258, short, [16] * c), (259, short, [8]),  # 8 = Adobe deflate
        (262, short, [2 if c >= 3 else 1]), (273, long_, [0]), (277, short, [c]), (278, long_, [h]),
        (279, long_, [len(strip)]), (284, short, [1]),
    ]
    if c in (2, 4):
        tags.append((338, short, [2]))  # extra sample = unassociated alpha
    tags.append((339, short, [1] * c))  # unsigned integers
    if icc_profile:
        tags.append((34675, undefined, icc_profile))
    tags.sort()
    ifd_size = 2 + 12 * len(tags) + 4
    extra_offset = 8 + ifd_size
    entries, extra = b"", b""
    for tag, kind, values in tags:
        code = "H" if kind == short else "I"
        payload = values if isinstance(values, bytes) else struct.pack(f"<{len(values)}{code}", *values)
        count = len(values)
        if tag == 273:  # strip offset: after the IFD and its out-of-line values, patched in below
            payload = b"\x00\x00\x00\x00"
        if len(payload) <= 4:
            entries += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\x00")
        else:
            if len(extra) % 2:
                extra += b"\x00"  # values start on a word boundary
            entries += struct.pack("<HHII", tag, kind, count, extra_offset + len(extra))
            extra += payload
    strip_offset = extra_offset + len(extra)
    entries = _patch_tiff_entry(entries, 273, struct.pack("<I", strip_offset))
    header = b"II*\x00" + struct.pack("<I", 8)
    return header + struct.pack("<H", len(tags)) + entries + b"\x00\x00\x00\x00" + extra + strip


def _patch_tiff_entry(entries: bytes, tag: int, value: bytes) -> bytes:
    for i in range(0, len(entries), 12):
        if struct.unpack_from("<H", entries, i)[0] == tag:
            return entries[: i + 8] + value + entries[i + 12 :]
    raise AssertionError(f"TIFF tag {tag} not found")  # pragma: no cover
