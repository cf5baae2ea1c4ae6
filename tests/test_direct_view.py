"""T0 direct view: the held-out threshold, early stopping, threshold-free scores, and proof that
T0 is a real attacker (it finds vessels a person plainly sees after a 16-level map)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medcloak import metrics
from medcloak.attacks import prior
from medcloak.attacks.direct_view import (
    DirectViewAttack,
    average_precision,
    choose_threshold,
    direct_view_features,
    score_direct_view,
    train_direct_view,
)
from medcloak.attacks.handmade import handmade_vessel_masks
from medcloak.attacks.own import PublicScheme
from medcloak.obfuscation.pipeline import ObfuscationConfig


def MapScheme(levels: int) -> PublicScheme:  # noqa: N802 - the map alone, as the attacker re-runs it
    return PublicScheme("paper", ObfuscationConfig(order="map-only", levels=levels))
from medcloak.attacks.unet import NetConfig, train_network
from medcloak.errors import MedcloakError

SIZE = 48  # at 32x32 the thin vessels are too few pixels for a clear margin


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 16, 16), bool)
    for i in range(n):
        r, c = rng.integers(2, 10, 2)
        masks[i, r : r + 4, c : c + 3] = True
    return masks


def test_threshold_is_found_below_one_half():
    masks = _blobs(6, 0)
    prob = np.where(masks, 0.2, 0.05).astype(np.float32)  # perfectly ranked, never above 0.5
    t, dice = choose_threshold(prob, masks)
    assert 0.05 <= t < 0.2 and dice == pytest.approx(1.0)
    assert metrics.vessel_dice(prob > 0.5, masks) == 0.0  # what a fixed 0.5 reported
    assert average_precision(prob, masks) == pytest.approx(1.0)
    # an uninformative prediction scores AP = prevalence, however it is thresholded
    const = np.full(masks.shape, 0.3, np.float32)
    assert average_precision(const, masks) == pytest.approx(masks.mean(), rel=1e-6)
    # tiny probabilities (all below the fixed grid) still get non-empty candidates
    t2, dice2 = choose_threshold(prob * 1e-3, masks)
    assert dice2 == pytest.approx(1.0) and t2 < 2e-4
    with pytest.raises(MedcloakError):
        choose_threshold(prob[:2], masks)
    # pixels under ``ignore`` (the catheter) count neither way, as in metrics.vessel_dice
    wrong = prob.copy()
    wrong[:, 0, :] = 0.9  # a bright false "vessel" row
    ignore = np.zeros(masks.shape, bool)
    ignore[:, 0, :] = True
    assert choose_threshold(wrong, masks)[1] < 0.9
    assert choose_threshold(wrong, masks, ignore=ignore)[1] == pytest.approx(1.0)
    assert average_precision(wrong, masks, ignore=ignore) == pytest.approx(1.0)
    t3, _ = choose_threshold(wrong, masks, ignore=ignore)
    assert metrics.vessel_dice(wrong > t3, masks, ignore=ignore) == pytest.approx(1.0)


def test_band_features_are_key_independent_and_flip_invariant():
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 16, (2, 12, 12)) / 15).astype(np.float32)
    perm = rng.permutation(16)
    y = (perm[np.rint(x * 15).astype(int)] / 15).astype(np.float32)  # another (bijective) key
    fx, fy = direct_view_features(x), direct_view_features(y)
    assert fx.shape == (2, 4, 12, 12) and fx.dtype == np.float32
    assert fx.min() >= 0 and fx.max() <= 1
    np.testing.assert_array_equal(fx[:, 1:], fy[:, 1:])  # only the raw channel sees the key
    np.testing.assert_array_equal(direct_view_features(x[:, :, ::-1])[:, 1:], fx[:, 1:, :, ::-1])
    flat = direct_view_features(np.full((1, 8, 8), 0.5, np.float32))
    assert not flat[:, 1:3].any() and not flat[:, 3].any()
    assert direct_view_features(x, features="raw").shape == (2, 1, 12, 12)
    with pytest.raises(MedcloakError):
        direct_view_features(x, features="nope")


def test_early_stopping_keeps_the_best_weights():
    x = np.random.default_rng(0).random((8, 16, 16), dtype=np.float32)
    y = x > 0.5
    scores = iter([0.3, 0.9, 0.5, 0.4, 0.2, 0.1, 0.0])
    snapshot = {}

    def monitor(net):
        s = next(scores)
        if s == 0.9:
            snapshot.update({k: v.clone() for k, v in net.state_dict().items()})
        return s

    net = train_network(x, y, NetConfig(channels=(4, 8), steps=100, batch_size=4), task="segment",
                        progress=False, monitor=monitor, eval_every=5, patience=3)
    assert net.history == [(5, 0.3), (10, 0.9), (15, 0.5), (20, 0.4), (25, 0.2)]
    assert net.best_step == 10 and net.steps_run == 25
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshot[k])


@pytest.fixture(scope="module")
def map16():
    """T0 against a 16-level keyed map (no VAE), 48x48 semi-synthetic frames."""
    from medcloak.synth.generate import generate

    victim = generate(48, size=SIZE, seed=11)
    attacker = generate(256, size=SIZE, seed=12)  # other patients
    scheme = MapScheme(levels=16)
    obf = scheme.fit(victim.frames, seed=99)(victim.frames, 0)  # the victim's key
    net = NetConfig(steps=600, lr=3e-3, batch_size=16)
    dv = train_direct_view(scheme, attacker.frames, attacker.masks, net=net, copies=2, seed=5,
                           eval_every=50, patience=4, progress=False)
    return victim, attacker, obf, dv


def test_direct_view_finds_vessels_a_person_sees(map16):
    victim, attacker, obf, dv = map16
    masks = victim.masks
    score = score_direct_view(dv, obf, masks)
    prior_dice = metrics.vessel_dice(prior.prior_segmentation(prior.mean_frame(attacker.frames), len(masks)), masks)
    floor = max(metrics.vessel_dice(m, masks) for m in handmade_vessel_masks(obf).values())
    assert score["dice"] >= prior_dice + 0.2, (score, prior_dice)
    assert score["dice"] >= floor + 0.2, (score, floor)
    assert score["ap"] >= 3 * score["prevalence"], score
    # the threshold came from the attacker's own held-out frames, and it transfers
    h = dv.report()
    assert 0 < h["threshold"] < 1 and h["threshold"] == dv.threshold == score["threshold"]
    assert h["ap"] >= 3 * h["prevalence"] and h["dice"] >= h["dice_at_0.5"]
    assert score["dice"] >= score["oracle_dice"] - 0.05
    assert 0.3 * score["true_fraction"] <= score["predicted_fraction"] <= 3 * score["true_fraction"]
    assert h["curve"] and h["best_step"] <= h["steps_run"] <= h["max_steps"]
    assert max(v for _, v in h["curve"]) == pytest.approx(h["dice"], abs=1e-3)
    np.testing.assert_array_equal(dv.segment(obf[:2]), dv.probabilities(obf[:2]) > dv.threshold)


def test_direct_view_is_not_fooled_by_noise(map16):
    """On frames with no vessel information T0 scores far lower (what is left is its learned
    spatial prior of where vessels tend to run)."""
    victim, _, obf, dv = map16
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 16, obf.shape).astype(np.float32) / 15
    real, fake = score_direct_view(dv, obf, victim.masks), score_direct_view(dv, noise, victim.masks)
    assert fake["ap"] <= 0.5 * real["ap"] and fake["ap"] <= 2 * fake["prevalence"], (real, fake)
    assert fake["dice"] <= real["dice"] - 0.25, (real, fake)


def test_direct_view_input_checks():
    f = np.zeros((6, 16, 16), np.float32)
    with pytest.raises(MedcloakError):
        train_direct_view(MapScheme(levels=16), f, np.zeros((5, 16, 16), bool), net=NetConfig(steps=1))
    with pytest.raises(MedcloakError):
        train_direct_view(MapScheme(levels=16), f, f > 0, net=NetConfig(steps=1), heldout_fraction=0.95)
    dv = DirectViewAttack(net=None, threshold=0.3)
    assert dv.report() == {"threshold": 0.3, "features": "raw"}
