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
                                        ((20, 20), (50, 50)), ((300, 200), (128, 128)), ((7, 9), (3, 2)),
                                        ((64, 48), (32, 24)), ((8, 8), (4, 4)), ((6, 6), (3, 3)), ((130, 34), (65, 17))])
def test_resize_is_skimage_bit_for_bit(shape, size):
    rng = np.random.default_rng(sum(shape) + sum(size))
    for img in (rng.random(shape, dtype=np.float32),
                (rng.integers(0, 256, shape) / 255.0).astype(np.float32),  # decoded 8-bit frames
                np.zeros(shape, np.float32), np.full(shape, 0.25, np.float32)):
        got = resize(img, size)
        assert got.dtype == np.float32 and got.shape == size
        assert got.tobytes() == _reference(img, size).tobytes()


def test_halving_fast_path_is_taken_and_matches_scipy_on_frames_with_structure():
    """512 -> 256 goes through medcloak.io.halve (not SciPy), bit for bit, also on smooth frames with
    tiny values (where float64 sums could round differently if the order were not SciPy's)."""
    from medcloak.io import halve

    assert halve.can_halve((512, 512), (256, 256)) and not halve.can_halve((512, 510), (256, 256))
    assert halve._verified()
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    frames = [(0.5 + 0.5 * np.sin(40 * xx * yy)).astype(np.float32),
              (np.exp(-40 * ((xx - 0.5) ** 2 + (yy - 0.3) ** 2)) * 1e-6).astype(np.float32)]
    for img in frames:
        assert halve.halve(img).tobytes() == halve._scipy(img).tobytes()
        assert resize(img, 256).tobytes() == _reference(img, (256, 256)).tobytes()


def test_halve_falls_back_to_scipy_when_its_self_check_fails(monkeypatch):
    from medcloak.io import halve

    img = np.random.default_rng(3).random((16, 16), dtype=np.float32)
    monkeypatch.setitem(halve._STATE, "ok", False)
    monkeypatch.setattr(halve, "_halve", lambda _img: (_ for _ in ()).throw(AssertionError("fast path used")))
    assert halve.halve(img).tobytes() == halve._scipy(img).tobytes()
