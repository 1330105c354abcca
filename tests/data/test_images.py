import io

import numpy as np
import pytest
import torch
from PIL import Image

from mfftools.data.images import (
    Preprocessing, decode_image, encode_image)
from mfftools.errors import MfftoolsError
from data_builders import encoded_image


def test_decode_normalises_png_exactly():
    data = encoded_image(3)
    pixels = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32)
    tensor = decode_image(data, "face.png")
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 112, 112)
    np.testing.assert_allclose(
        tensor.numpy(), (pixels.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6
    )
    assert tensor.min() >= -1 and tensor.max() <= 1


def test_decode_converts_grey_and_resizes_bicubic():
    grey = Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (50, 60), dtype=np.uint8), mode="L"
    )
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    tensor = decode_image(buffer.getvalue(), "grey.png")
    expected = np.asarray(
        grey.convert("RGB").resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float32
    )
    assert tensor.shape == (3, 112, 112)
    np.testing.assert_allclose(
        tensor.numpy(), (expected.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6
    )
    torch.testing.assert_close(tensor[0], tensor[1])


@pytest.mark.parametrize("data", [b"", b"not an image at all", encoded_image(0, fmt="JPEG")[:300]])
def test_undecodable_image_is_named(data):
    with pytest.raises(MfftoolsError, match="cannot decode image some/member.jpg"):
        decode_image(data, "some/member.jpg")


def test_encode_jpeg_round_trips_closely():
    pixels = np.full((112, 112, 3), (200, 100, 50), dtype=np.uint8)
    data = encode_image(pixels, quality=95)
    assert data[:2] == b"\xff\xd8"
    decoded = np.asarray(Image.open(io.BytesIO(data)), dtype=np.int64)
    assert np.abs(decoded - pixels).max() <= 3


def test_undecodable_images_get_a_plain_reason():
    with pytest.raises(MfftoolsError) as error:
        decode_image(b"not an image at all", "a.jpg")
    assert str(error.value) == ("cannot decode image a.jpg (not an image file Pillow can read: "
                                "damaged, empty, or another kind of file)")
    with pytest.raises(MfftoolsError) as error:
        decode_image(encoded_image(0, fmt="JPEG")[:300], "cut.jpg")
    assert "BytesIO" not in str(error.value) and "cut.jpg (" in str(error.value)


def test_mean_and_std_on_the_0_255_scale_are_read_as_such():
    given = Preprocessing.given(mean=(127.5,) * 3, std=(127.5,) * 3).for_model(None, "m")
    assert (given.mean, given.std, given.given_scale) == ((0.5,) * 3, (0.5,) * 3, "0-255")
    assert given.attrs()["input_given_scale"] == "0-255"
    data = encoded_image(5)
    assert torch.equal(given.decode(data, "x"), decode_image(data, "x"))
    # one value above 1 puts both on 0-255: x - 127.5, unscaled, as some models expect
    raw = Preprocessing.given(mean=(127.5,) * 3, std=(1.0,) * 3).for_model(None, "m")
    assert raw.std == (1 / 255,) * 3
    pixels = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32).transpose(2, 0, 1)
    np.testing.assert_allclose(raw.decode(data, "x").numpy(), pixels - 127.5, atol=1e-3)
    plain = Preprocessing.given(mean=(0.5,) * 3, std=(1.0,) * 3)
    assert (plain.std, plain.given_scale) == ((1.0,) * 3, "0-1")


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = np.random.default_rng(2).integers(0, 65536, (112, 112), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    tensor = decode_image(buffer.getvalue(), "deep.png")
    expected = (values.astype(np.float32) / 65535.0 - 0.5) / 0.5
    for channel in tensor:
        np.testing.assert_allclose(channel.numpy(), expected, atol=1e-5)
    assert (tensor >= 0.999).float().mean() < 0.01  # not white
    small = io.BytesIO()
    Image.fromarray(values[:56, :56]).save(small, format="PNG")
    assert decode_image(small.getvalue(), "small.png").shape == (3, 112, 112)


def test_exif_orientation_is_not_applied():
    pixels = np.random.default_rng(3).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    assert Image.open(io.BytesIO(buffer.getvalue())).getexif()[0x0112] == 6
    np.testing.assert_allclose(decode_image(buffer.getvalue(), "turned.png").numpy(),
                               (pixels.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)
