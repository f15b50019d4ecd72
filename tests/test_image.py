"""to_rgb_uint8, load_image and limit_image_side: every input becomes an upright HxWx3 uint8 RGB array."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samkit.images import ImageLoadError, limit_image_side, load_image, to_rgb_uint8

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- to_rgb_uint8: numpy


def test_rgb_uint8_array_is_returned_unchanged() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    result = to_rgb_uint8(image)
    assert result.dtype == np.uint8 and result.shape == (5, 7, 3)
    np.testing.assert_array_equal(result, image)


def test_one_pixel_image_is_supported() -> None:
    assert to_rgb_uint8(np.full((1, 1, 3), 9, np.uint8)).shape == (1, 1, 3)


def test_grayscale_array_is_replicated_to_three_channels() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    result = to_rgb_uint8(gray)
    assert result.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(result[:, :, channel], gray)


def test_single_channel_array_is_treated_as_grayscale() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    np.testing.assert_array_equal(to_rgb_uint8(gray), np.repeat(gray, 3, axis=2))


def test_rgba_array_is_composited_onto_white() -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = (10, 20, 30)
    rgba[0, :, 3] = (0, 255, 51)  # transparent, opaque, 20 % opaque
    result = to_rgb_uint8(rgba)
    np.testing.assert_array_equal(result[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(result[0, 1], (10, 20, 30))
    np.testing.assert_array_equal(result[0, 2], np.rint(0.2 * np.array([10, 20, 30]) + 0.8 * 255))


def test_gray_alpha_array_is_composited_onto_white() -> None:
    gray_alpha = np.array([[[0, 0], [0, 255]]], np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(gray_alpha)[0], [[255, 255, 255], [0, 0, 0]])


def test_uint16_maps_full_range_with_rounding() -> None:
    values = np.array([[0, 128, 129, 257 * 100, 65535]], np.uint16)
    result = to_rgb_uint8(values)[0, :, 0]
    np.testing.assert_array_equal(result, np.rint(values[0].astype(np.float64) * 255 / 65535).astype(np.uint8))
    assert list(result) == [0, 0, 1, 100, 255]


def test_float_in_unit_range_is_scaled_to_255() -> None:
    values = np.array([[0.0, 0.2, 1.0]], np.float32)
    assert list(to_rgb_uint8(values)[0, :, 0]) == [0, 51, 255]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_with_nan_or_inf_raises_value_error(bad: float) -> None:
    values = np.array([[0.5, bad]], np.float64)
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_rgb_uint8(values)


def test_float_outside_unit_range_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got \[0, 200\]"):
        to_rgb_uint8(np.array([[0.0, 200.0]], np.float32))


def test_bool_maps_to_0_and_255() -> None:
    assert list(to_rgb_uint8(np.array([[False, True]]))[0, :, 0]) == [0, 255]


def test_other_integer_dtype_in_byte_range_is_accepted() -> None:
    values = np.array([[0, 17, 255]], np.int64)
    assert list(to_rgb_uint8(values)[0, :, 1]) == [0, 17, 255]


def test_other_integer_dtype_out_of_byte_range_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"int32 must have values in \[0, 255\]"):
        to_rgb_uint8(np.array([[-1, 300]], np.int32))


@pytest.mark.parametrize("dtype", [np.complex64, object])
def test_unsupported_dtype_raises_type_error(dtype: type) -> None:
    with pytest.raises(TypeError, match="Unsupported image dtype"):
        to_rgb_uint8(np.zeros((2, 2, 3), dtype=dtype))


def test_non_image_object_raises_type_error() -> None:
    with pytest.raises(TypeError, match="got list"):
        to_rgb_uint8([[0, 1], [2, 3]])  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(4,), (4, 4, 5), (2, 4, 4, 3)])
def test_unsupported_shape_raises_value_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="Expected an image of shape"):
        to_rgb_uint8(np.zeros(shape, np.uint8))


def test_channel_first_array_error_suggests_transpose() -> None:
    with pytest.raises(ValueError, match="channel-first"):
        to_rgb_uint8(np.zeros((3, 8, 8), np.uint8))


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0), (0, 0, 4)])
def test_empty_array_raises_value_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="empty"):
        to_rgb_uint8(np.zeros(shape, np.uint8))


# ---------------------------------------------------------------- to_rgb_uint8: PIL


def test_pil_rgb_image_becomes_array() -> None:
    result = to_rgb_uint8(Image.new("RGB", (4, 3), (1, 2, 3)))
    assert result.shape == (3, 4, 3)
    np.testing.assert_array_equal(result[2, 3], (1, 2, 3))


def test_pil_result_is_writable() -> None:
    result = to_rgb_uint8(Image.new("RGB", (2, 2)))
    result[0, 0] = 7
    assert result[0, 0, 0] == 7


def test_pil_grayscale_is_replicated() -> None:
    np.testing.assert_array_equal(to_rgb_uint8(Image.new("L", (2, 2), 77))[0, 0], (77, 77, 77))


def test_pil_bilevel_maps_to_black_and_white() -> None:
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    np.testing.assert_array_equal(to_rgb_uint8(image)[0], [[0, 0, 0], [255, 255, 255]])


def test_pil_rgba_transparent_pixels_become_white() -> None:
    result = to_rgb_uint8(Image.new("RGBA", (1, 1), (10, 20, 30, 0)))
    np.testing.assert_array_equal(result[0, 0], (255, 255, 255))


def test_pil_la_is_composited_onto_white() -> None:
    result = to_rgb_uint8(Image.new("LA", (1, 1), (0, 255)))
    np.testing.assert_array_equal(result[0, 0], (0, 0, 0))


def test_pil_palette_uses_palette_colours() -> None:
    image = Image.new("RGB", (2, 1), RED).quantize(colors=2)
    assert image.mode == "P"
    np.testing.assert_array_equal(to_rgb_uint8(image)[0, 0], RED)


def test_pil_palette_transparency_becomes_white() -> None:
    image = Image.new("P", (1, 1), 0)
    image.putpalette([10, 20, 30] * 256)
    image.info["transparency"] = 0
    np.testing.assert_array_equal(to_rgb_uint8(image)[0, 0], (255, 255, 255))


def test_pil_cmyk_is_converted_to_rgb() -> None:
    image = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    np.testing.assert_array_equal(to_rgb_uint8(image)[0, 0], RED)


def test_pil_16_bit_image_maps_to_8_bit() -> None:
    image = Image.fromarray(np.array([[0, 65535]], np.uint16))
    assert image.mode == "I;16"
    assert list(to_rgb_uint8(image)[0, :, 0]) == [0, 255]


def test_pil_32_bit_integer_image_is_read_as_16_bit() -> None:
    image = Image.fromarray(np.array([[0, 257 * 3, 65535]], np.int32), mode="I")
    assert list(to_rgb_uint8(image)[0, :, 2]) == [0, 3, 255]


def test_pil_32_bit_integer_image_beyond_16_bit_raises_value_error() -> None:
    image = Image.fromarray(np.array([[0, 70000]], np.int32), mode="I")
    with pytest.raises(ValueError, match="16-bit"):
        to_rgb_uint8(image)


def test_pil_float_image_in_unit_range_is_scaled() -> None:
    image = Image.fromarray(np.array([[0.0, 1.0]], np.float32), mode="F")
    assert list(to_rgb_uint8(image)[0, :, 0]) == [0, 255]


# ---------------------------------------------------------------- load_image


def test_load_image_reads_png_from_path(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (5, 3), (4, 5, 6)).save(path)
    result = load_image(path)
    assert result.shape == (3, 5, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[1, 1], (4, 5, 6))


def test_load_image_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (2, 2)).save(path)
    assert load_image(str(path)).shape == (2, 2, 3)


def test_load_image_reads_bytes() -> None:
    assert load_image(_encode(Image.new("RGB", (6, 4)), "PNG")).shape == (4, 6, 3)


def test_load_image_reads_file_object() -> None:
    assert load_image(io.BytesIO(_encode(Image.new("L", (6, 4)), "PNG"))).shape == (4, 6, 3)


def test_load_image_reads_one_pixel_image() -> None:
    result = load_image(_encode(Image.new("RGB", (1, 1), BLUE), "PNG"))
    np.testing.assert_array_equal(result, [[BLUE]])


def test_load_image_reads_16_bit_png() -> None:
    data = _encode(Image.fromarray(np.array([[0, 257 * 200, 65535]], np.uint16)), "PNG")
    result = load_image(data)
    assert result.shape == (1, 3, 3)
    assert list(result[0, :, 0]) == [0, 200, 255]


def test_load_image_reads_cmyk_jpeg() -> None:
    data = _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = load_image(data)
    assert result.shape == (16, 16, 3)
    np.testing.assert_allclose(result[8, 8], RED, atol=8)


def test_load_image_reads_rgba_png_onto_white() -> None:
    result = load_image(_encode(Image.new("RGBA", (2, 2), (0, 0, 0, 0)), "PNG"))
    np.testing.assert_array_equal(result[0, 0], (255, 255, 255))


def test_load_image_applies_exif_orientation() -> None:
    stored = Image.new("RGB", (40, 20), RED)
    stored.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was rotated: display rotated 90 degrees clockwise
    result = load_image(_encode(stored, "JPEG", quality=95, exif=exif))
    assert result.shape == (40, 20, 3)  # height and width swapped
    np.testing.assert_allclose(result[5, 10], RED, atol=20)  # the left edge is now on top
    np.testing.assert_allclose(result[35, 10], BLUE, atol=20)


def test_load_image_missing_file_raises_image_load_error(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_load_image_random_bytes_raise_image_load_error() -> None:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        load_image(data)


def test_load_image_non_image_file_raises_image_load_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(ImageLoadError, match="notes.jpg"):
        load_image(path)


def test_load_image_truncated_jpeg_raises_image_load_error() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG", quality=90)
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_load_image_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_image(b"")


def test_load_image_over_pixel_limit_raises_image_load_error() -> None:
    data = _encode(Image.new("RGB", (20, 10)), "PNG")
    with pytest.raises(ImageLoadError, match="too large: 20x10 = 200 pixels"):
        load_image(data, max_pixels=199)


def test_load_image_decompression_bomb_header_raises_image_load_error() -> None:
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(_png_header_only(60_000, 60_000), max_pixels=None)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_load_image_huge_header_is_refused_before_decoding() -> None:
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(_png_header_only(12_000, 10_000))


# ---------------------------------------------------------------- limit_image_side


def test_limit_image_side_downscales_longest_side() -> None:
    image = np.zeros((300, 1200, 3), np.uint8)
    result, scale = limit_image_side(image, 600)
    assert result.shape == (150, 600, 3)
    assert scale == 0.5


def test_limit_image_side_averages_pixels() -> None:
    image = np.zeros((2, 4, 3), np.uint8)
    image[:, ::2] = 200  # alternating columns: area interpolation averages them
    result, _ = limit_image_side(image, 2)
    np.testing.assert_array_equal(result, np.full((1, 2, 3), 100, np.uint8))


def test_limit_image_side_keeps_small_image_as_is() -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    result, scale = limit_image_side(image, 40)
    assert result is image and scale == 1.0


def test_limit_image_side_none_means_no_limit() -> None:
    image = np.zeros((3000, 40, 3), np.uint8)
    result, scale = limit_image_side(image, None)
    assert result is image and scale == 1.0


def test_limit_image_side_keeps_single_channel_axis() -> None:
    result, _ = limit_image_side(np.zeros((100, 50, 1), np.uint8), 10)
    assert result.shape == (10, 5, 1)


@pytest.mark.parametrize("max_side", [0, -5, 2.5, True])
def test_limit_image_side_rejects_invalid_limit(max_side: object) -> None:
    with pytest.raises(ValueError, match="max_side"):
        limit_image_side(np.zeros((4, 4, 3), np.uint8), max_side)  # type: ignore[arg-type]


def test_a_patched_open_that_needs_a_missing_decoder_gives_image_load_error(monkeypatch):
    from PIL import Image

    def open_needing_missing_module(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pi_heif'")

    monkeypatch.setattr(Image, "open", open_needing_missing_module)
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        load_image(b"not an image at all")


def test_a_file_that_is_not_an_image_never_reaches_ultralytics_plugin_installer(monkeypatch, tmp_path):
    """ultralytics, once imported, wraps Image.open to check (and pip-install) a HEIF plugin when Pillow cannot
    identify a file; load_image reads with Pillow's own function, so a non-image is refused at once."""
    import ultralytics.utils.checks
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)

    def no_installs(*args, **kwargs):
        raise AssertionError("ultralytics' check_requirements was called")

    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", no_installs)
    path = tmp_path / "notes.jpg"
    path.write_text("these are notes")
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        load_image(path)
