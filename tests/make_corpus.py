"""Generate the bad-input corpus: odd and hostile files people upload as "images".

    python tests/make_corpus.py OUT_DIR      # writes every file, prints name and size

The tests build it into a temporary folder (see `corpus` in tests/test_bad_input.py);
nothing here is committed except this script. Each entry is deterministic (fixed seeds),
so a failing case can be regenerated and inspected by hand.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

UPLOAD_LIMIT = 10 * 1024 * 1024  # cnn_core.data.preprocess.MAX_UPLOAD_BYTES (kept literal: no TF import here)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo(size=(96, 64), seed=0) -> Image.Image:
    """A small 'photo': smooth colour gradients plus noise, so every encoder has real work."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) * 127 // max(1, w + h - 2)], -1)
    arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    ImageDraw.Draw(img).ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=(200, 40, 40))
    return img


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def forged_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width×height, with a few bytes of pixel data: a header bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _real_bomb() -> bytes:
    """A genuinely decodable 10,000×10,000 black PNG: 100 megapixels in ~100 kB."""
    return _encode(Image.new("1", (10_000, 10_000), 0), "PNG", optimize=True)


def _animated_gif() -> bytes:
    frames = []
    for i in range(4):
        frame = Image.new("RGB", (40, 40), (30 + 50 * i, 90, 160))
        ImageDraw.Draw(frame).rectangle([i * 8, i * 8, i * 8 + 10, i * 8 + 10], fill=(250, 250, 40))
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=8))
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored 96×64, shown 64×96
    return _encode(_photo((96, 64), seed=3), "JPEG", quality=90, exif=exif.tobytes())


def _transparent() -> bytes:
    img = _photo((64, 64), seed=4).convert("RGBA")
    alpha = Image.new("L", img.size, 0)
    ImageDraw.Draw(alpha).ellipse([8, 8, 56, 56], fill=255)
    img.putalpha(alpha)
    return _encode(img, "PNG")


def _sixteen_bit() -> bytes:
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # 0..64491
    return _encode(Image.fromarray(ramp), "PNG")  # mode I;16, saved as a 16-bit greyscale PNG


def _keras_zip() -> bytes:
    """What a `.keras` file is: a zip of config.json, metadata.json and weights."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}))
        zf.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential", "config": {}}))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(256))
    return buf.getvalue()


def _over_limit() -> bytes:
    """A real, decodable JPEG padded past the upload limit (bytes after EOI are legal junk)."""
    jpeg = _encode(_photo(), "JPEG")
    return jpeg + b"\x00" * (UPLOAD_LIMIT + 1 - len(jpeg))


def _truncated(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def _corrupt_exif() -> bytes:
    """A JPEG whose APP1 (EXIF) segment is garbage after a valid 'Exif' header."""
    jpeg = _encode(_photo(seed=7), "JPEG")
    payload = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff\xff" + bytes(range(256)) * 2
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def builders() -> dict[str, callable]:
    """File name → a function returning its bytes. Names carry the extension a user would see."""
    rng = np.random.default_rng(1234)
    photo = _photo()
    return {
        # --- not images at all ---------------------------------------------------------------
        "empty.png": lambda: b"",
        "text_renamed.png": lambda: b"Shopping list:\n- milk\n- eggs\n" * 20,
        "page_renamed.png": lambda: (
            b"<!DOCTYPE html><html><head><title>x</title></head>"
            b"<body><script>alert(1)</script><img src=x onerror=alert(2)></body></html>"
        ),
        "drawing.svg": lambda: (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10" fill="red"/></svg>'
        ),
        "drawing_renamed.png": lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="4000000" height="4000000">'
            b'<rect width="10" height="10"/></svg>'
        ),
        "model_renamed.jpg": _keras_zip,
        "random_bytes.jpg": lambda: rng.bytes(4096),
        "random_bytes.bin": lambda: rng.bytes(777),
        # --- damaged images --------------------------------------------------------------------
        "truncated.jpg": lambda: _truncated(_encode(_photo((200, 150), seed=5), "JPEG", quality=95), 0.5),
        "truncated.png": lambda: _truncated(_encode(_photo((200, 150), seed=6), "PNG"), 0.5),
        "header_only.png": lambda: _encode(photo, "PNG")[:40],
        # --- too big -------------------------------------------------------------------------
        "bomb_forged_header.png": lambda: forged_png(100_000, 100_000),
        "bomb_100_megapixels.png": _real_bomb,
        "over_upload_limit.jpg": _over_limit,
        # --- valid but unusual images: all must be classified ------------------------------------
        "one_pixel.png": lambda: _encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
        "panorama.jpg": lambda: _encode(_photo((4000, 120), seed=8), "JPEG"),
        "tall_strip.png": lambda: _encode(_photo((3, 900), seed=9), "PNG"),
        "sixteen_bit.png": _sixteen_bit,
        "palette.png": lambda: _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"),
        "palette_transparent.gif": lambda: _encode(
            photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "GIF", transparency=0
        ),
        "transparent.png": _transparent,
        "fully_transparent.png": lambda: _encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG"),
        "cmyk.jpg": lambda: _encode(photo.convert("CMYK"), "JPEG"),
        "grayscale.jpg": lambda: _encode(photo.convert("L"), "JPEG"),
        "bilevel.png": lambda: _encode(photo.convert("1"), "PNG"),
        "animated.gif": _animated_gif,
        "exif_rotated.jpg": _exif_rotated,
        "corrupt_exif.jpg": _corrupt_exif,
        "photo.tiff": lambda: _encode(photo, "TIFF", compression="tiff_lzw"),
        "lab.tiff": lambda: _encode(photo.convert("LAB"), "TIFF"),
        "cmyk.tiff": lambda: _encode(photo.convert("CMYK"), "TIFF"),
        "float.tiff": lambda: _encode(
            Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)), "TIFF"
        ),
        "photo.webp": lambda: _encode(photo, "WEBP"),
        "photo.bmp": lambda: _encode(photo, "BMP"),
        "no_extension": lambda: _encode(photo, "PNG"),
        "jpeg_named.png": lambda: _encode(photo, "JPEG"),
        # --- real images in formats we do not accept -------------------------------------------
        "icon.ico": lambda: _encode(photo, "ICO"),
        "photo.heic": lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
    }


def build_corpus(folder: str | Path) -> dict[str, Path]:
    """Write every corpus file into `folder`; returns name → path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, make in builders().items():
        path = folder / name
        path.write_bytes(make())
        out[name] = path
    return out


def valid_photo_png() -> bytes:
    """A plain valid upload, used after each bad one to prove the page still works."""
    return _encode(_photo(seed=11), "PNG")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/make_corpus.py OUT_DIR")
    for name, path in build_corpus(sys.argv[1]).items():
        print(f"{path.stat().st_size:>10}  {name}")
