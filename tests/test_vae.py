"""medcloak.obfuscation.vae: shapes, determinism, noise path, serialisation, training."""

import json

import numpy as np
import pytest
import torch

from medcloak.errors import MedcloakError
from medcloak.obfuscation.vae import (
    VAE,
    VAEConfig,
    latent_shape,
    reconstruct,
    train_vae,
    vae_from_bytes,
    vae_to_bytes,
)

TINY = dict(base_channels=4, latent_channels=2, downsamples=2, epochs=2, batch_size=8)


def _frames(n=16, size=16, seed=0):
    """Dark horizontal/vertical bars on a smooth ramp: a learnable toy set."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        img = 0.6 + 0.3 * (yy * rng.uniform(-1, 1) + xx * rng.uniform(-1, 1)) / 2
        r = rng.integers(2, size - 3)
        if i % 2:
            img[r : r + 2] *= 0.5
        else:
            img[:, r : r + 2] *= 0.5
        out[i] = np.clip(img, 0, 1)
    return out


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    x = _frames(24)
    model, hist = train_vae(x[:16], x[16:], VAEConfig(**TINY), progress=False)
    return model, hist, x


def test_config_json_round_trip_and_validation():
    cfg = VAEConfig(beta=0.01, epochs=3, vessel_weight=1.5)
    again = VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(MedcloakError, match="unknown"):
        VAEConfig.from_dict({**cfg.to_dict(), "nope": 1})
    with pytest.raises(MedcloakError):
        VAEConfig(base_channels=0)
    with pytest.raises(MedcloakError):
        VAEConfig(beta=-1.0)


def test_shapes_range_and_latent_shape():
    cfg = VAEConfig(**TINY)
    model = VAE(cfg).eval()
    x = torch.rand(3, 1, 16, 32)
    mu, logvar = model.encode(x)
    assert tuple(mu.shape[1:]) == latent_shape(cfg, 16, 32) == (2, 4, 8)
    assert logvar.shape == mu.shape
    recon, mu2, _ = model(x)
    assert recon.shape == x.shape and torch.equal(mu, mu2)
    assert float(recon.detach().min()) >= 0 and float(recon.detach().max()) <= 1
    out = reconstruct(model, np.random.default_rng(0).random((5, 16, 32), dtype=np.float32), batch_size=2)
    assert out.shape == (5, 16, 32) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_non_divisible_size_raises():
    cfg = VAEConfig(**TINY)
    with pytest.raises(MedcloakError, match="multiple of 4"):
        latent_shape(cfg, 18, 16)
    with pytest.raises(MedcloakError, match="multiple of 4"):
        train_vae(np.zeros((4, 18, 16), np.float32), None, cfg, progress=False)
    with pytest.raises(MedcloakError, match="multiple of 4"):
        reconstruct(VAE(cfg), np.zeros((2, 16, 10), np.float32))


def test_bad_frames_raise():
    cfg = VAEConfig(**TINY)
    with pytest.raises(MedcloakError, match=r"\[0, 1\]"):
        train_vae(np.full((4, 16, 16), 2.0, np.float32), None, cfg, progress=False)
    with pytest.raises(MedcloakError, match="NaN"):
        reconstruct(VAE(cfg), np.full((2, 16, 16), np.nan, np.float32))
    with pytest.raises(MedcloakError, match=r"\(N, H, W\)"):
        reconstruct(VAE(cfg), np.zeros((16, 16), np.float32))


def test_short_fit_lowers_loss_and_history(trained):
    model, hist, _ = trained
    assert [h["epoch"] for h in hist] == [1, 2]
    assert set(hist[0]) >= {"epoch", "train_loss", "val_loss", "val_ssim", "seconds"}
    assert all(np.isfinite(h["train_loss"]) and h["seconds"] > 0 for h in hist)
    x = _frames(24)
    cfg = VAEConfig(**{**TINY, "epochs": 15, "lr": 3e-3, "base_channels": 8, "batch_size": 4})
    _, longer = train_vae(x[:16], x[16:], cfg, progress=False)
    assert longer[-1]["train_loss"] < longer[0]["train_loss"]
    assert longer[-1]["val_loss"] < 0.6 * longer[0]["val_loss"]
    assert not model.training


def test_training_is_deterministic_for_a_seed_and_callback(trained):
    model, hist, x = trained
    rows = []
    again, hist2 = train_vae(x[:16], x[16:], VAEConfig(**TINY), progress=False, callback=rows.append)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in hist2]
    assert rows == hist2
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other, _ = train_vae(x[:16], x[16:], VAEConfig(**{**TINY, "seed": 1}), progress=False)
    assert not np.array_equal(reconstruct(model, x), reconstruct(other, x))


def test_training_leaves_global_rng_alone():
    x = _frames(8)
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    train_vae(x, None, VAEConfig(**{**TINY, "epochs": 1}), progress=False)
    assert torch.equal(torch.rand(3), want)


def test_val_target_is_used(trained):
    model, _, x = trained
    target = np.clip(x[16:] + 0.2, 0, 1)
    _, h1 = train_vae(x[:16], x[16:], VAEConfig(**{**TINY, "epochs": 1}), progress=False)
    _, h2 = train_vae(x[:16], x[16:], VAEConfig(**{**TINY, "epochs": 1}), val_target=target, progress=False)
    assert h1[0]["train_loss"] == h2[0]["train_loss"] and h1[0]["val_ssim"] != h2[0]["val_ssim"]
    with pytest.raises(MedcloakError):
        train_vae(x[:16], x[16:], VAEConfig(**TINY), val_target=target[:2], progress=False)


def test_noise_none_is_mean_path_and_noise_changes_output(trained):
    model, _, x = trained
    shape = (len(x), *latent_shape(model.config, 16, 16))
    mean = reconstruct(model, x)
    with torch.inference_mode():
        mu, _ = model.encode(torch.from_numpy(x)[:, None])
        direct = model.decode(mu)[:, 0].numpy()
    np.testing.assert_allclose(mean, direct, atol=1e-6)
    np.testing.assert_array_equal(reconstruct(model, x, noise=np.zeros(shape, np.float32)), mean)
    noise = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    noisy = reconstruct(model, x, noise=noise)
    assert np.abs(noisy - mean).max() > 1e-4
    np.testing.assert_allclose(noisy, reconstruct(model, x, noise=noise, batch_size=5), atol=1e-6)
    with pytest.raises(MedcloakError, match="latent noise"):
        reconstruct(model, x, noise=noise[:, :1])


def test_bytes_round_trip(trained):
    model, _, x = trained
    data = vae_to_bytes(model)
    assert data == vae_to_bytes(model)  # deterministic
    loaded = vae_from_bytes(data)
    assert loaded.config == model.config
    np.testing.assert_array_equal(reconstruct(loaded, x), reconstruct(model, x))
    assert vae_to_bytes(loaded) == data
    with pytest.raises(MedcloakError, match="not a medcloak VAE"):
        vae_from_bytes(b"garbage")
    with pytest.raises(MedcloakError):
        vae_from_bytes(data[: len(data) // 2])


def test_loss_options_train():
    x = _frames(8)
    for up in ("transposed", "nearest"):
        cfg = VAEConfig(**{**TINY, "epochs": 1, "vessel_weight": 2.0, "ssim_weight": 0.5, "upsample": up})
        model, hist = train_vae(x, x, cfg, progress=False)
        assert np.isfinite(hist[0]["train_loss"]) and np.isfinite(hist[0]["val_ssim"])
        assert reconstruct(model, x).shape == x.shape
    with pytest.raises(MedcloakError, match="upsample"):
        VAEConfig(upsample="bilinear")


def test_presets():
    from medcloak.errors import MedcloakError
    from medcloak.obfuscation.vae import VAE_PRESETS, VAEConfig, latent_shape, vae_preset

    assert vae_preset("fast") == VAEConfig()
    fid = vae_preset("fidelity")
    assert fid.downsamples == 1 and fid.epochs == 40 and set(VAE_PRESETS) == {"fast", "fidelity"}
    assert latent_shape(fid, 128, 128) == (fid.latent_channels, 64, 64)
    with pytest.raises(MedcloakError, match="unknown VAE preset"):
        vae_preset("huge")
