"""One preprocessing path for training, evaluation, the CLI, the canvas and uploads.

Two steps, both per dataset:

1. `preprocessor(name).from_image(img)`: any picture (PIL image or array) → one
   uint8 sample shaped like the dataset's own images (28×28 grey or 32×32 RGB).
2. `to_model_input(x_uint8)`: a batch of such samples → float32 model input.
   Models rescale internally, so this only fixes dtype and the channel axis.

Training and evaluation use step 2 on dataset arrays; drawings and photos go
through step 1 first, so the network sees them exactly as it saw its data.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from cnn_core.base.errors import ImageError
from cnn_core.data.datasets import DatasetInfo, dataset_info

# Formats Pillow decodes that people actually upload; anything else gets a message.
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"}

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # ~ a 40-megapixel photo; larger is refused before decoding
# Images per forward pass wherever the project only predicts (evaluation, validation, snapshots, the
# out-of-distribution features). Larger batches save little time and cost memory that, in a separate
# training process, decides whether server plus run fit Community Cloud's 2.7 GB
# (benchmarks/results/memory.md).
INFERENCE_BATCH = 128


def to_model_input(x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """uint8 batch (N,H,W) or (N,H,W,C) → float32 (N,H,W,C) raw 0..255 values."""
    x = np.asarray(x)
    if x.ndim == len(info.input_shape):  # (N,H,W) grey → add channel axis
        x = x[..., None]
    return x.astype(np.float32)


# Formats people try that we deliberately do not decode, named in the message.
UNSUPPORTED_EXTENSIONS = {
    "heic": "HEIC",
    "heif": "HEIF",
    "svg": "SVG",
    "avif": "AVIF",
    "psd": "Photoshop",
    "raw": "RAW",
    "cr2": "RAW",
    "nef": "RAW",
    "dng": "RAW",
    "pdf": "PDF",
    "eps": "EPS",
}
SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP, GIF or TIFF"


def load_image(
    data: bytes | str | io.IOBase,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    filename: str | None = None,
) -> Image.Image:
    """Decode an image file safely: size and pixel limits, format check, EXIF orientation.

    Returns a fully loaded PIL image (first frame for animations). Every failure is an
    ImageError with a message a person can act on.
    """
    name = filename or (data if isinstance(data, str) else None)
    ext = name.rsplit(".", 1)[-1].lower() if name and "." in name else ""
    if ext in UNSUPPORTED_EXTENSIONS:
        raise ImageError(f"{UNSUPPORTED_EXTENSIONS[ext]} files are not supported: upload a {SUPPORTED_TEXT} image.")
    data = _read_bytes(data, max_bytes)
    _check_header(data, max_pixels)
    return standard_mode(_decode(data))


def load_data_url(url: str) -> np.ndarray:
    """A `data:image/...;base64,` URL, as a browser canvas exports it, decoded like an upload: the
    pixels as an array (RGBA for the Draw page's canvas). A malformed URL is an ImageError."""
    header, sep, encoded = url.partition(",")
    if not (sep and header.startswith("data:image/") and header.endswith(";base64")):
        raise ImageError("The drawing did not arrive as an image: clear the canvas and draw again.")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("The drawing arrived damaged: clear the canvas and draw again.") from None
    return np.asarray(load_image(data))


def _read_bytes(data: bytes | str | io.IOBase, max_bytes: int) -> bytes:
    """The file's bytes (from a path, a file object or bytes), refused when empty or over `max_bytes`."""
    if isinstance(data, str):
        try:
            with open(data, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as err:
            raise ImageError(f"Could not read '{data}': {err.strerror or err}.") from None
    elif hasattr(data, "read"):
        data = data.read(max_bytes + 1)
    if len(data) == 0:
        raise ImageError("The file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The file is larger than the {max_bytes // (1024 * 1024)} MB limit.")
    head = data[:512].lstrip().lower()
    if head.startswith(b"<?xml") or b"<svg" in head:
        raise ImageError(f"SVG files are not supported: upload a {SUPPORTED_TEXT} image.")
    return data


def _check_header(data: bytes, max_pixels: int) -> None:
    """Read only the header: refuse unreadable files, unsupported formats and too many pixels
    before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt, (width, height) = probe.format, probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(f"This file is not an image we can read. Upload a {SUPPORTED_TEXT} image.") from None
    except Image.DecompressionBombError:
        raise ImageError("The image has too many pixels to process safely.") from None
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(f"{fmt} images are not supported: upload a {SUPPORTED_TEXT} image.")
    if width * height > max_pixels:
        raise ImageError(f"The image is {width}×{height} pixels; the limit is {max_pixels // 1_000_000} megapixels.")
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")


def _decode(data: bytes) -> Image.Image:
    """Every pixel of the first frame, turned upright as its EXIF orientation says."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.seek(0)
            img.load()
            return ImageOps.exif_transpose(img)
    except Image.DecompressionBombError:
        raise ImageError("The image has too many pixels to process safely.") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError("The image file is damaged or incomplete and cannot be decoded.") from None


# Modes every later step (display, preprocessing) handles; load_image returns only these.
STANDARD_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


def _high_bit_to_grey(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey → 8-bit 'L'. Floats in 0..1 are taken as 0..1;
    otherwise values above 255 are scaled down by the maximum. NaN and ±inf become 0."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(arr.max()) if arr.size else 0.0
    top = 1.0 if img.mode == "F" and 0.0 < peak <= 1.0 else max(peak, 255.0)
    return Image.fromarray(np.clip(arr / top * 255, 0, 255).astype(np.uint8), "L")


def standard_mode(img: Image.Image) -> Image.Image:
    """Any PIL mode (16-bit, float, CMYK, YCbCr, LAB, HSV…) → one of STANDARD_MODES."""
    mode = img.mode
    if mode in STANDARD_MODES:
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _high_bit_to_grey(img)
    try:
        if mode == "LAB":  # Pillow has no direct LAB→RGB conversion; go through a colour profile
            from PIL import ImageCms

            transform = ImageCms.buildTransform(
                ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
            )
            return ImageCms.applyTransform(img, transform)
        return img.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))
    except Exception:  # noqa: BLE001 - ImageCms.PyCMSError, ValueError…: any Pillow conversion failure is one message
        raise ImageError(
            f"Images in the {mode} colour mode are not supported: upload a {SUPPORTED_TEXT} image."
        ) from None


def _flatten_to(img: Image.Image, mode: str, background=(255, 255, 255)) -> Image.Image:
    """Any PIL mode (palette, alpha, 16-bit, CMYK…) → 'L' or 'RGB', transparency over `background`."""
    img = standard_mode(img)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        base = Image.new("RGBA", img.size, background + (255,))
        img = Image.alpha_composite(base, img.convert("RGBA"))
    return img.convert(mode)


@dataclass(frozen=True)
class Preprocessor:
    """Turns arbitrary pictures into samples shaped like one dataset's images."""

    info: DatasetInfo

    def to_model_input(self, x: np.ndarray) -> np.ndarray:
        return to_model_input(x, self.info)

    def from_image(self, img: Image.Image | np.ndarray) -> np.ndarray:
        if isinstance(img, np.ndarray):
            img = array_to_image(img)
        if self.info.name == "mnist":
            return digit_to_mnist(img)
        if self.info.name == "fashion_mnist":
            return photo_to_fashion(img)
        return photo_to_cifar(img)


def preprocessor(dataset: str) -> Preprocessor:
    return Preprocessor(dataset_info(dataset))


PREVIEW_PX = 800  # longest side of a picture shown beside its prediction (a column a third of the page wide)


def preview(img: Image.Image, longest: int = PREVIEW_PX) -> Image.Image:
    """A copy of `img` no larger than `longest` pixels a side, for display: a phone photo (12 megapixels and
    more) is otherwise re-encoded at full size on every rerun of the page that shows it."""
    if max(img.size) <= longest:
        return img
    small = img.copy()
    small.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return small


def array_to_image(arr: np.ndarray) -> Image.Image:
    """HxW, HxWx1/3/4 arrays (uint8, or floats in 0..1) → PIL image."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"Cannot interpret an array of shape {arr.shape} as an image.")
    return Image.fromarray(arr)


# -- MNIST: the classic MNIST normalisation applied to a drawing or photo -----------------

DIGIT_BOX = 20  # MNIST digits were scaled to fit 20×20, then centred by mass in 28×28
INK_THRESHOLD = 0.1  # fraction of full ink below which a pixel counts as paper


def digit_ink(img: Image.Image) -> np.ndarray:
    """Grey image → float ink map in 0..1 (1 = ink), whatever the polarity.

    The canvas draws white ink on black; paper photos have dark ink on light paper.
    The border tells which: if the border is mostly light, invert.
    """
    grey = (
        np.asarray(
            _flatten_to(img, "L", background=(0, 0, 0) if _alpha_is_ink(img) else (255, 255, 255)), dtype=np.float32
        )
        / 255.0
    )
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
    # Stretch contrast so faint pencil on grey paper still reads as ink.
    lo, hi = np.percentile(grey, 1), grey.max()
    if hi - lo > 1e-3:
        grey = np.clip((grey - lo) / (hi - lo), 0, 1)
    return grey


def _alpha_is_ink(img: Image.Image) -> bool:
    # A transparent canvas export stores strokes as opaque pixels over transparency.
    return img.mode in ("RGBA", "LA") and np.asarray(img.getchannel("A")).mean() < 128


def digit_steps(img: Image.Image) -> dict[str, np.ndarray]:
    """Every step of the digit normalisation, for display: ink → crop → 20 px box → 28×28."""
    ink = digit_ink(img)
    mask = ink > INK_THRESHOLD
    if not mask.any():
        empty = np.zeros((28, 28), np.uint8)
        return {"ink": (ink * 255).astype(np.uint8), "cropped": empty, "boxed": empty, "final": empty}
    rows, cols = np.where(mask)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    boxed = np.asarray(
        Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = boxed
    cy, cx = ndimage.center_of_mass(canvas) if canvas.sum() > 0 else (13.5, 13.5)
    shifted = ndimage.shift(canvas, (round(13.5 - cy), round(13.5 - cx)), order=0, mode="constant")
    final = np.clip(shifted, 0, 255).astype(np.uint8)
    return {
        "ink": (ink * 255).astype(np.uint8),
        "cropped": (crop * 255).astype(np.uint8),
        "boxed": boxed.astype(np.uint8),
        "final": final,
    }


def preparation_steps(picture, dataset: str) -> dict[str, np.ndarray] | None:
    """`digit_steps` of a picture (PIL image or array) a digit model normalises; None when there are
    no steps to show: photo models only crop and resize, and a 28×28 array is already a sample."""
    if dataset != "mnist" or (isinstance(picture, np.ndarray) and picture.shape == (28, 28)):
        return None
    return digit_steps(array_to_image(picture) if isinstance(picture, np.ndarray) else picture)


def digit_to_mnist(img: Image.Image) -> np.ndarray:
    return digit_steps(img)["final"]


def is_blank(sample: np.ndarray) -> bool:
    """True when a preprocessed sample holds (almost) no ink: nothing to classify."""
    return float(np.asarray(sample, np.float32).max()) < 255 * INK_THRESHOLD


CANVAS_FILLED = 0.9  # share of a drawing canvas in ink from which it counts as painted over


def why_no_digit(picture, sample: np.ndarray, from_canvas: bool = False) -> str | None:
    """Why a picture holds no digit to read, or None when it does: "filled" for a drawing canvas
    painted (almost) all over, "blank" when its preprocessed `sample` has (almost) no ink.

    A filled canvas is checked on the canvas itself: preprocessing would read its few unpainted
    pixels as the ink, or find no ink at all, and call it empty."""
    if from_canvas and canvas_ink_fraction(picture) >= CANVAS_FILLED:
        return "filled"
    return "blank" if is_blank(sample) else None


def canvas_ink_fraction(canvas: np.ndarray) -> float:
    """Share of a drawing canvas (white ink on black, RGBA as the canvas returns it) covered in ink.

    A canvas painted over completely normalises to nothing — every pixel is "paper" — so the page
    uses this to say "filled" rather than "empty"."""
    arr = np.asarray(canvas, np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    light = arr[..., :3].mean(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.shape[-1] in (2, 4):
        light = light * (arr[..., -1] / 255.0)  # transparent pixels carry no ink
    return float(np.mean(light > 127))


# -- Fashion-MNIST: grey, fit into 28×28, light backgrounds inverted --------------------


def photo_to_fashion(img: Image.Image) -> np.ndarray:
    grey = _flatten_to(img, "L")
    arr = np.asarray(grey, dtype=np.uint8)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    if np.median(border) > 127:  # Fashion-MNIST items are light on a black background
        grey = ImageOps.invert(grey)
    fitted = ImageOps.pad(grey, (28, 28), Image.Resampling.LANCZOS, color=0)
    return np.asarray(fitted, dtype=np.uint8)


# -- CIFAR-10: centre crop to a square, resize to 32×32 -----------------------------------


def photo_to_cifar(img: Image.Image) -> np.ndarray:
    rgb = _flatten_to(img, "RGB")
    # reduce() first keeps huge photos cheap and avoids aliasing before the final resize.
    side = min(rgb.size)
    if side >= 128:
        rgb = rgb.reduce(max(1, side // 64))
    square = ImageOps.fit(rgb, (32, 32), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(square, dtype=np.uint8)
