"""``medcloak.io.arrays.resize`` gives skimage's numbers bit for bit (models are fitted on frames
resized by skimage, so a faster resizer must not move a single float)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize as sk_resize

from medcloak.io.arrays import resize


def _reference(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The resizer as it was: skimage, then a clip to [0, 1]."""
    out = sk_resize(np.asarray(img, np.float32), size, order=1, mode="reflect",
                    anti_aliasing=bool(size[0] < img.shape[0] or size[1] < img.shape[1]), preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("shape,size", [((512, 512), (256, 256)), ((96, 80), (32, 32)), ((33, 47), (64, 20)),
                                        ((20, 20), (50, 50)), ((300, 200), (128, 128)), ((7, 9), (3, 2))])
def test_resize_is_skimage_bit_for_bit(shape, size):
    rng = np.random.default_rng(sum(shape) + sum(size))
    for img in (rng.random(shape, dtype=np.float32),
                (rng.integers(0, 256, shape) / 255.0).astype(np.float32),  # decoded 8-bit frames
                np.zeros(shape, np.float32), np.full(shape, 0.25, np.float32)):
        got = resize(img, size)
        assert got.dtype == np.float32 and got.shape == size
        assert got.tobytes() == _reference(img, size).tobytes()
