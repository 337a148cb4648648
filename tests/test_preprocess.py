import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnn_core.base.errors import ImageError
from cnn_core.data.datasets import dataset_info
from cnn_core.data.preprocess import (
    digit_steps,
    digit_to_mnist,
    is_blank,
    load_image,
    photo_to_cifar,
    photo_to_fashion,
    preprocessor,
    to_model_input,
)


def _png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _drawn_one(size=280, ink="black", paper="white", x0=200):
    img = Image.new("L", (size, size), paper)
    ImageDraw.Draw(img).line([(x0, 40), (x0, 240)], fill=ink, width=18)
    return img


def test_digit_is_scaled_to_20px_and_centred_by_mass():
    out = digit_to_mnist(_drawn_one())
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rows = np.where(out.max(axis=1) > 25)[0]
    assert 18 <= rows.max() - rows.min() + 1 <= 21  # the longer side becomes ~20 px
    ys, xs = np.nonzero(out)
    weights = out[ys, xs].astype(float)
    assert abs(np.average(ys, weights=weights) - 13.5) <= 1.0
    assert abs(np.average(xs, weights=weights) - 13.5) <= 1.0  # an off-centre stroke ends up centred


def test_dark_ink_on_paper_and_white_ink_on_black_give_the_same_digit():
    paper = digit_to_mnist(_drawn_one(ink="black", paper="white"))
    canvas = digit_to_mnist(_drawn_one(ink="white", paper="black"))
    assert np.abs(paper.astype(int) - canvas.astype(int)).mean() < 3
    assert paper[0, 0] == 0  # MNIST convention: black background


def test_steps_are_exposed_for_display():
    steps = digit_steps(_drawn_one())
    assert set(steps) == {"ink", "cropped", "boxed", "final"}
    assert max(steps["boxed"].shape) == 20


def test_empty_canvas_is_blank_and_a_dot_is_not():
    assert is_blank(digit_to_mnist(Image.new("L", (200, 200), 0)))
    dot = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(dot).ellipse([95, 95, 105, 105], fill=255)
    assert not is_blank(digit_to_mnist(dot))


def test_canvas_ink_fraction_counts_opaque_light_pixels():
    from cnn_core.data.preprocess import canvas_ink_fraction

    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255  # opaque black: nothing drawn
    assert canvas_ink_fraction(canvas) == 0.0
    canvas[:140, :, :3] = 255  # the top half painted white
    assert canvas_ink_fraction(canvas) == 0.5
    canvas[140:, :, :3] = 255
    canvas[140:, :, 3] = 0  # ... and the bottom half white but fully transparent
    assert canvas_ink_fraction(canvas) == 0.5
    assert canvas_ink_fraction(np.full((28, 28), 255, np.uint8)) == 1.0


def test_why_no_digit_tells_a_painted_over_canvas_from_an_empty_one():
    from cnn_core.data.preprocess import why_no_digit

    def canvas(fraction_in_ink: float) -> np.ndarray:
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., 3] = 255
        rgba[: round(280 * fraction_in_ink), :, :3] = 255  # white ink from the top down
        return rgba

    def sample(rgba):
        return digit_to_mnist(Image.fromarray(rgba))

    painted, empty, half = canvas(0.95), canvas(0.0), canvas(0.3)
    assert why_no_digit(painted, sample(painted), from_canvas=True) == "filled"
    assert why_no_digit(empty, sample(empty), from_canvas=True) == "blank"
    assert why_no_digit(half, sample(half), from_canvas=True) is None
    # Only a canvas can be painted over: an upload is judged by its sample alone.
    assert why_no_digit(painted, sample(painted), from_canvas=False) != "filled"


def test_preparation_steps_are_shown_for_digit_pictures_only():
    from cnn_core.data.preprocess import preparation_steps

    drawing = _drawn_one()
    steps = preparation_steps(drawing, "mnist")
    assert list(steps) == ["ink", "cropped", "boxed", "final"] and steps["final"].shape == (28, 28)
    assert preparation_steps(np.asarray(drawing.convert("L")), "mnist")["final"].shape == (28, 28)
    assert preparation_steps(np.zeros((28, 28), np.uint8), "mnist") is None  # already a sample
    assert preparation_steps(drawing, "cifar10") is None and preparation_steps(drawing, "fashion_mnist") is None


def test_cifar_centre_crops_and_resizes():
    img = Image.new("RGB", (400, 200), (255, 0, 0))
    img.paste((0, 0, 255), (100, 0, 300, 200))  # blue square in the middle
    out = photo_to_cifar(img)
    assert out.shape == (32, 32, 3)
    assert out[:, :, 2].mean() > 240 and out[:, :, 0].mean() < 15  # only the centre survives


def test_fashion_inverts_light_backgrounds():
    img = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(img).rectangle([15, 10, 45, 50], fill=40)
    out = photo_to_fashion(img)
    assert out.shape == (28, 28) and out[0, 0] == 0 and out[14, 14] > 150


def test_model_input_adds_channel_axis_and_keeps_raw_values():
    x = np.full((2, 28, 28), 200, np.uint8)
    out = to_model_input(x, dataset_info("mnist"))
    assert out.shape == (2, 28, 28, 1) and out.dtype == np.float32 and out.max() == 200


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "CMYK", "I;16", "1"])
def test_every_image_mode_reaches_the_model_shape(mode):
    base = Image.new("RGB", (50, 40), (120, 30, 200))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(np.full((40, 50), 40000, np.uint16))
    for name in ("mnist", "fashion_mnist", "cifar10"):
        sample = preprocessor(name).from_image(img)
        assert sample.shape == dataset_info(name).raw_shape and sample.dtype == np.uint8


def test_load_image_respects_exif_orientation():
    img = Image.new("RGB", (60, 30), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    loaded = load_image(_png(img, "JPEG", exif=exif.tobytes()))
    assert loaded.size == (30, 60)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<html><body>hi</body></html>", "not an image"),
    ],
)
def test_load_image_rejects_non_images_with_a_message(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_and_oversized_images_are_refused():
    whole = _png(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="damaged or incomplete"):
        load_image(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match="megapixels"):
        load_image(_png(Image.new("L", (3000, 3000))), max_pixels=1_000_000)
    with pytest.raises(ImageError, match="MB limit"):
        load_image(b"x" * 2048, max_bytes=1024)


def test_a_canvas_data_url_decodes_like_an_upload():
    """The Draw page's canvas sends `canvas.toDataURL("image/png")`; it must come back as the RGBA
    pixels drawn, and anything else that arrives must be a readable error, not a traceback."""
    import base64

    from cnn_core.data.preprocess import load_data_url

    drawn = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(drawn).line([(140, 40), (140, 240)], fill=(255, 255, 255, 255), width=18)
    url = "data:image/png;base64," + base64.b64encode(_png(drawn)).decode()
    pixels = load_data_url(url)
    assert pixels.shape == (280, 280, 4) and np.array_equal(pixels, np.asarray(drawn))
    assert digit_to_mnist(Image.fromarray(pixels)).max() > 200  # the stroke survives the digit path
    for bad in (
        "",
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png;base64,***not base64***",
        "data:image/png;base64," + base64.b64encode(b"not a png").decode(),
    ):
        with pytest.raises(ImageError):
            load_data_url(bad)


def test_a_preview_is_a_small_copy_and_a_small_picture_is_shown_as_it_is():
    from cnn_core.data.preprocess import PREVIEW_PX, preview

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    small = preview(photo)
    assert small.size == (PREVIEW_PX, PREVIEW_PX * 3 // 4) and photo.size == (4000, 3000)
    tiny = Image.new("RGB", (32, 32))
    assert preview(tiny) is tiny
