from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PhotoFactory = Callable[..., Path]


def photo_array(seed: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like image: smooth random colour fields, distinct per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0xA431] = "SERIAL-123456"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    return exif


@lru_cache(maxsize=64)
def _encoded(seed: int, size: tuple[int, int], orientation: int, fmt: str, mode: str) -> bytes:
    image = photo_array(seed, size)
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(
            buffer,
            "JPEG",
            quality=90,
            exif=gps_exif(orientation).tobytes(),
            comment=b"secret comment",
        )
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def make_photo(tmp_path: Path) -> PhotoFactory:
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)

    def make(
        name: str,
        seed: int,
        size: tuple[int, int] = (1400, 1050),
        orientation: int = 1,
        fmt: str = "JPEG",
        mode: str = "RGB",
    ) -> Path:
        path = folder / name
        path.write_bytes(_encoded(seed, size, orientation, fmt, mode))
        return path

    return make


@pytest.fixture
def photos(make_photo: PhotoFactory) -> Path:
    """Twelve distinct landscape photos with GPS EXIF, three of them rotated (orientation 6)."""
    for i in range(12):
        make_photo(f"IMG_{i:04d}.jpg", seed=i, orientation=6 if i < 3 else 1)
    return make_photo("IMG_0000.jpg", seed=0, orientation=6).parent
