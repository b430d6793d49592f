"""Uploaded images: safe file names, byte and pixel limits, validation by litesr's own decoder.

An upload is streamed into a hidden temporary file of its own folder (``uploads/<id>/``), counted as it arrives
(over the byte limit: refused before the rest is read), then decoded with :func:`litesr.images.read_image`, whose
pixel limit also stops decompression bombs. Only a file that decodes is renamed to its final, sanitised name; any
failure removes the folder, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError, LitesrError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 100
_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadError(LitesrError):
    """An upload was refused; ``status`` is the HTTP status the client gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def safe_name(name: str, default_suffix: str = ".png") -> str:
    """A file name that stays inside its folder whatever the client sent: the last path component only (``/`` and
    ``\\`` both count), ASCII letters, digits, ``.``, ``_`` and ``-``, no leading dot, at most 100 characters."""
    from ..images import IMAGE_SUFFIXES

    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._ ")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = f".{suffix.lower()}" if suffix else ""
    if suffix not in IMAGE_SUFFIXES:
        stem, suffix = (f"{stem}_{suffix[1:]}" if suffix and stem else stem or suffix[1:]), default_suffix
    stem = stem.strip("._ ")[: _MAX_NAME - len(suffix)] or "image"
    return stem + suffix


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing anything that would resolve outside ``folder`` (belt and braces over safe_name)."""
    root = folder.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise UploadError(f"{name!r}: not a plain file name", 400)
    return path


@dataclass(frozen=True)
class Upload:
    id: str
    path: Path
    name: str
    width: int
    height: int
    size: int
    format: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "width": self.width, "height": self.height, "bytes": self.size,
                "format": self.format}


class UploadStore:
    def __init__(self, folder: Path, *, max_bytes: int, max_pixels: int | None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        folder.mkdir(parents=True, exist_ok=True)

    async def receive(self, name: str, chunks: AsyncIterator[bytes], run_sync) -> Upload:  # noqa: ANN001
        """Store one upload from its body ``chunks``; ``run_sync`` runs the decoder off the event loop."""
        upload_id = uuid.uuid4().hex
        folder = self.folder / upload_id
        folder.mkdir()
        tmp = folder / ".incoming"
        try:
            size = 0
            with open(tmp, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadError(f"{name}: file is over the upload limit of {_mb(self.max_bytes)}", 413)
                    f.write(chunk)
            if size == 0:
                raise UploadError(f"{name}: empty file", 400)
            width, height, fmt = await run_sync(self._check, tmp, name)
            final = inside(folder, safe_name(name, default_suffix=_suffix_for(fmt)))
            tmp.rename(final)
            return Upload(upload_id, final, final.name, width, height, size, fmt)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _check(self, path: Path, name: str) -> tuple[int, int, str]:
        from ..images import read_image

        try:
            image = read_image(path, max_pixels=self.max_pixels)
        except ImageError as exc:
            message = str(exc).replace(str(path), name)
            status = 413 if "over the limit" in message else 400
            raise UploadError(message.replace("--max-pixels N or LITESR_MAX_PIXELS=N", "litesr studio --max-pixels"),
                              status) from None
        return image.width, image.height, image.format or "PNG"

    def get(self, upload_id: str) -> Path:
        """The stored file of an upload id (ids are 32 hex digits: nothing else reaches the file system)."""
        if not _ID.match(upload_id or ""):
            raise UploadError(f"unknown upload {upload_id!r}", 404)
        folder = self.folder / upload_id
        files = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
        if len(files) != 1:
            raise UploadError(f"unknown upload {upload_id!r}", 404)
        return files[0]

    def clean_stale(self) -> int:
        """Remove uploads a killed server left half-received (a folder with only its hidden temporary file)."""
        removed = 0
        for folder in self.folder.iterdir() if self.folder.is_dir() else []:
            if folder.is_dir() and not any(not p.name.startswith(".") for p in folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _suffix_for(fmt: str) -> str:
    return {"JPEG": ".jpg", "MPO": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "GIF": ".gif",
            "PPM": ".ppm", "TGA": ".tga"}.get(fmt, ".png")


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n} bytes"
