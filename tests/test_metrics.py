"""medcloak.metrics: agreement with scikit-image, edge cases, vessel map, re-identification."""

import doctest

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medcloak import metrics
from medcloak.metrics import (
    PSNR_CAP_DB,
    pixel_correlation,
    psnr,
    psnr_per_frame,
    reidentification_topk,
    ssim,
    ssim_per_frame,
    vessel_dice,
    vessel_map,
    vessel_recovery,
)


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    a = rng.random((3, 24, 24))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    return a, b


def _line_image(size=32, row=15, width=2, bg=0.8, fg=0.3):
    x = np.full((size, size), bg)
    x[row : row + width, 4 : size - 4] = fg
    return x


def test_doctests():
    res = doctest.testmod(metrics, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 9 and res.failed == 0


def test_ssim_matches_skimage_wang_settings(pair):
    a, b = pair
    want = [
        structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(ssim_per_frame(a, b), want, rtol=1e-12)
    assert ssim(a, b) == pytest.approx(np.mean(want))
    assert ssim(a[0], b[0]) == pytest.approx(want[0])  # (H, W) input
    assert 0 < ssim(a, b) < 1


def test_ssim_identity_and_dtype_promotion(pair):
    a, _ = pair
    assert ssim(a, a) == 1.0
    assert ssim(a.astype(np.float32), a.astype(np.float32)) == 1.0


def test_psnr_matches_skimage_and_is_monotone(pair):
    a, b = pair
    want = [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(psnr_per_frame(a, b), want)
    assert psnr(a, b) == pytest.approx(np.mean(want))
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, a.shape)
    values = [psnr(a, np.clip(a + s * noise, 0, 1)) for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(x > y for x, y in zip(values, values[1:]))


def test_psnr_identical_is_capped(pair):
    a, b = pair
    assert psnr(a, a) == PSNR_CAP_DB
    mixed = psnr_per_frame(np.stack([a[0], a[1]]), np.stack([a[0], b[1]]))
    assert mixed[0] == PSNR_CAP_DB and mixed[1] < 40


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 2, 8, 8)), np.zeros((2, 2, 8, 8)))


def test_pixel_correlation(pair):
    a, b = pair
    want = np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)])
    assert pixel_correlation(a, b) == pytest.approx(want)
    assert pixel_correlation(a, 1 - a) == pytest.approx(-1.0)
    assert pixel_correlation(np.full((8, 8), 0.5), a[0, :8, :8]) == 0.0  # constant frame


def test_dice_edge_cases():
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    half = np.zeros((8, 8), bool)
    half[:4] = True
    assert vessel_dice(empty, empty) == 1.0
    assert vessel_dice(empty, full) == 0.0
    assert vessel_dice(full, full) == 1.0
    assert vessel_dice(half, full) == pytest.approx(2 * 32 / (32 + 64))
    # stacks: mean over frames, an empty/empty frame counts 1
    assert vessel_dice(np.stack([empty, half]), np.stack([empty, full])) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError):
        vessel_dice(empty, np.zeros((8, 9), bool))


def test_vessel_map_finds_dark_line_not_flat_or_bright():
    x = _line_image()
    m = vessel_map(x)
    assert m.dtype == bool and m.shape == x.shape
    line = x < 0.5
    assert vessel_dice(m, line) > 0.6
    assert m[15:17, 10:22].all()  # the middle of the line is found
    assert not m[:8].any() and not m[-8:].any()  # far from the line: nothing
    assert not vessel_map(np.full((32, 32), 0.5)).any()
    # a bright line is not a vessel
    assert vessel_dice(vessel_map(1.0 - x + 0.1), line) < 0.2


def test_vessel_map_stack_and_recovery():
    x = np.stack([_line_image(row=8), _line_image(row=20)])
    masks = x < 0.5
    m = vessel_map(x)
    assert m.shape == x.shape
    np.testing.assert_array_equal(m[1], vessel_map(x[1]))
    assert vessel_recovery(x, masks) == vessel_dice(m, masks) > 0.6
    assert vessel_recovery(x, masks[::-1]) < 0.2  # wrong frame's mask


def test_reidentification_identical_and_shuffled():
    rng = np.random.default_rng(0)
    orig = rng.random((12, 16, 16))
    for metric in ("corr", "ssim"):
        assert reidentification_topk(orig, orig, k=(1, 5), metric=metric) == {1: 1.0, 5: 1.0}
    # unrelated noise against 40 originals: top-1 near chance (1/40), top-5 near 5/40
    orig = rng.random((40, 16, 16))
    fakes = rng.random((40, 16, 16))
    acc = reidentification_topk(fakes, orig, k=(1, 5), metric="corr")
    assert acc[1] <= 0.15 and acc[5] <= 0.35
    # a constant reconstruction must not match anything (ties count against)
    assert reidentification_topk(np.zeros_like(orig), orig, k=1, metric="corr") == {1: 0.0}


def test_reidentification_noisy_copies_and_bad_args():
    rng = np.random.default_rng(3)
    orig = rng.random((10, 16, 16))
    noisy = orig + rng.normal(0, 0.2, orig.shape)
    assert reidentification_topk(noisy, orig, k=1, metric="ssim")[1] == 1.0
    with pytest.raises(ValueError):
        reidentification_topk(orig, orig, metric="mse")
    with pytest.raises(ValueError):
        reidentification_topk(orig, orig, k=0)


def test_vessel_dice_ignore_counts_neither_way():
    pred = np.zeros((8, 8), bool)
    true = np.zeros((8, 8), bool)
    true[2, :] = True
    pred[2, :] = True
    pred[5, :] = True  # a false tube (e.g. the catheter)
    ign = np.zeros((8, 8), bool)
    ign[5, :] = True
    assert vessel_dice(pred, true) == pytest.approx(2 * 8 / 24)
    assert vessel_dice(pred, true, ignore=ign) == 1.0
    # an ignored pixel of the true mask is not a miss either
    assert vessel_dice(pred & ~ign, true | ign, ignore=ign) == 1.0
    # ignoring everything: two empty masks agree
    assert vessel_dice(pred, true, ignore=np.ones((8, 8), bool)) == 1.0
    with pytest.raises(ValueError, match="ignore"):
        vessel_dice(pred, true, ignore=np.zeros((8, 9), bool))
    x = _line_image()
    ign32 = np.zeros(x.shape, bool)
    ign32[:, :10] = True
    assert vessel_recovery(x, x < 0.5, ignore=ign32) == vessel_dice(vessel_map(x), x < 0.5, ignore=ign32)


def _tree_image(size=64, faint=0.25, strong=0.5, isolated=True):
    """A strong trunk that continues as a faint vessel, and (optionally) an equally faint lone
    vessel, seen through a detector blur of 0.7 px (as the generator's frames)."""
    att = np.zeros((size, size))
    att[20:23, 6:32] += strong        # trunk, 3 px wide
    att[20:23, 32:58] += faint        # its faint distal part
    if isolated:
        att[40:43, 10:58] += faint    # same contrast, not connected to any strong vessel
    return np.exp(-ndimage.gaussian_filter(att, 0.7)) * 0.85


def test_vessel_map_keeps_faint_vessels_only_where_they_join_the_tree():
    m = vessel_map(_tree_image())
    assert m[20:23, 10:30].all()              # trunk
    assert m[19:24, 34:56].any(axis=0).all()  # faint part, connected to the trunk
    assert not m[36:47, :].any()               # equally faint, isolated: not a vessel
    # nothing but faint vessels: no seed, empty map (no fixed fraction of pixels is forced)
    assert not vessel_map(_tree_image(strong=0.25)[30:]).any()


def test_vessel_map_area_follows_content_and_ignores_gain_and_broad_anatomy():
    one = _tree_image(isolated=False)
    att = np.zeros(one.shape)
    att[44:47, 6:58] = 0.5                     # a second trunk
    two = one * np.exp(-ndimage.gaussian_filter(att, 0.7))
    a1, a2 = vessel_map(one).sum(), vessel_map(two).sum()
    assert 1.6 < a2 / a1 < 2.6                 # twice the vessels, about twice the area
    # display gain: the line integral only shifts by a constant
    assert vessel_dice(vessel_map(0.6 * two), vessel_map(two)) > 0.99
    # a broad dark band (rib/heart shadow, wider than the disk) and a step edge are not vessels
    broad = np.full((64, 64), 0.8)
    broad[20:34, :] *= np.exp(-0.5)
    broad[:, 50:] *= np.exp(-0.4)
    assert vessel_map(broad).mean() < 0.01
    # the scale follows the frame side: a 5-px band is a vessel at 128 px (disk radius 3 px), too
    # broad for a 1-px disk (the default at 32 px)
    band = np.full((128, 128), 0.8)
    band[60:65, 10:118] = 0.3
    assert vessel_map(band)[60:65, 20:108].mean() > 0.9
    assert vessel_map(band, radius=1)[61:64, 20:108].mean() < 0.1
    with pytest.raises(ValueError, match="radius"):
        vessel_map(band, radius=0)


@pytest.fixture(scope="module")
def synth128():
    from medcloak.synth import generate

    return generate(16, size=128, seed=21, frames_per_patient=4)


def test_vessel_map_ceiling_on_generator_frames(synth128):
    """The hand-made map of noise-free frames against the visible-lumen mask (catheter ignored)."""
    d = synth128
    clean = vessel_map(d.clean)
    ceiling = vessel_dice(clean, d.masks, ignore=d.catheter)
    assert ceiling >= 0.8, ceiling
    # the catheter is a dark tube the map finds: counting it lowers the score
    assert vessel_dice(clean, d.masks) < ceiling - 0.02
    assert (clean & d.catheter).sum() > 0.3 * d.catheter.sum()
    # noisy frames score a little lower; the wrong frame's mask scores far lower
    noisy = vessel_recovery(d.frames, d.masks, ignore=d.catheter)
    assert ceiling - 0.15 < noisy <= ceiling + 0.01
    other = np.roll(np.arange(len(d)), 8)
    assert vessel_dice(clean, d.masks[other], ignore=d.catheter | d.catheter[other]) < 0.4
