import io

import numpy as np
import pytest
import torch
from PIL import Image

from mfftools.data.images import collate_skipping_bad, decode_image, decode_or_skip, encode_image
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


def test_decode_or_skip_returns_none_only_when_asked(caplog):
    assert decode_or_skip(b"junk", "bad.jpg", skip_bad_images=True) is None
    assert "bad.jpg" in caplog.text
    with pytest.raises(MfftoolsError, match="bad.jpg"):
        decode_or_skip(b"junk", "bad.jpg", skip_bad_images=False)


def test_collate_skipping_bad_separates_skipped_rows():
    image = torch.zeros(3, 112, 112)
    images, indices, skipped = collate_skipping_bad([(image, 4), (None, 5), (image + 1, 6)])
    assert images.shape == (2, 3, 112, 112) and images[1].max() == 1
    assert indices.tolist() == [4, 6] and skipped.tolist() == [5]
    images, indices, skipped = collate_skipping_bad([(None, 0)])
    assert images.shape == (0, 3, 112, 112) and indices.tolist() == [] and skipped.tolist() == [0]


def test_encode_jpeg_round_trips_closely():
    pixels = np.full((112, 112, 3), (200, 100, 50), dtype=np.uint8)
    data = encode_image(pixels, quality=95)
    assert data[:2] == b"\xff\xd8"
    decoded = np.asarray(Image.open(io.BytesIO(data)), dtype=np.int64)
    assert np.abs(decoded - pixels).max() <= 3
