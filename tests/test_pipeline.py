"""The Obfuscator: determinism, key sensitivity, orders, latents, save/load bound to the key."""

import base64
import json
import os
import stat

import numpy as np
import pytest
import torch

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAEConfig

TINY = VAEConfig(base_channels=4, latent_channels=2, downsamples=1, residual_units=0, epochs=1, batch_size=8, seed=3)
K1, K2 = Key(b"\x11" * 32), Key(b"\x22" * 32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    base = 0.3 + 0.4 * xx[None] * yy[None]
    return np.clip(base + 0.2 * rng.random((12, 16, 16)), 0, 1).astype(np.float32)


def fitted(key, frames, **cfg):
    obf = Obfuscator(key, config=ObfuscationConfig(vae=TINY, **cfg))
    obf.fit(frames[:10], frames[10:], progress=False)
    return obf


@pytest.fixture(scope="module")
def obf1(frames):
    return fitted(K1, frames)


def test_default_is_vae_then_map_and_outputs_are_table_levels(obf1, frames):
    assert obf1.config.order == "vae-then-map" and obf1.config.latent == "mean"
    assert obf1.config.image_size == 16 and obf1.input_size == (16, 16)
    y = obf1.obfuscate(frames)
    assert y.shape == frames.shape and y.dtype == np.float32
    assert set(np.unique(y)) <= set(np.unique(obf1.mapping.lut))
    # the map is applied to the VAE output, not to the frame itself
    assert not np.array_equal(y, obf1.mapping(frames))
    assert np.array_equal(y, obf1.mapping(obf1.vae_stage(frames)))
    assert len(obf1.history) == 1 and obf1.history[0]["val_ssim"] is not None


def test_deterministic_per_frame(obf1, frames):
    y = obf1.obfuscate(frames)
    assert np.array_equal(y, obf1.obfuscate(frames))
    assert np.array_equal(y[4], obf1.obfuscate(frames[4]))  # (H, W) input, no batch mates
    assert np.array_equal(y[[5, 2]], obf1.obfuscate(frames[[5, 2]]))
    again = fitted(K1, frames)  # same key + same VAE seed -> same obfuscation
    assert again.model_fingerprint == obf1.model_fingerprint
    assert np.array_equal(y, again.obfuscate(frames))


def test_another_key_changes_at_least_90_percent(obf1, frames):
    other = fitted(K2, frames)  # same VAE (same seed), different key
    assert np.array_equal(other.vae_stage(frames), obf1.vae_stage(frames))
    assert (other.obfuscate(frames) != obf1.obfuscate(frames)).mean() >= 0.9


def test_sampled_latent_is_keyed_and_deterministic(frames):
    s1 = fitted(K1, frames, latent="sampled")
    s2 = fitted(K2, frames, latent="sampled")
    mean = fitted(K1, frames)
    v = s1.vae_stage(frames)
    assert np.array_equal(v, s1.vae_stage(frames))
    assert np.array_equal(v[3], s1.vae_stage(frames[3:4])[0])
    assert not np.array_equal(v, mean.vae_stage(frames))
    assert not np.array_equal(v, s2.vae_stage(frames))
    # the noise depends on the frame's content: two equal frames get equal noise
    twin = np.stack([frames[0], frames[0]])
    w = s1.vae_stage(twin)
    assert np.array_equal(w[0], w[1])


def test_orders(frames):
    only = Obfuscator(K1, config=ObfuscationConfig(order="map-only"))
    assert only.fitted and only.fit(frames) == [] and only.input_size is None
    big = np.random.default_rng(1).random((40, 24)).astype(np.float32)  # any size
    assert np.array_equal(only.obfuscate(big), only.mapping(big))
    mtv = fitted(K1, frames, order="map-then-vae")
    y = mtv.obfuscate(frames)
    assert y.shape == frames.shape and 0 <= y.min() and y.max() <= 1
    assert np.array_equal(y, mtv.obfuscate(frames))
    assert np.unique(y).size > 256  # continuous VAE output after the map
    with pytest.raises(MedcloakError):
        ObfuscationConfig(order="vae-only")
    with pytest.raises(MedcloakError):
        ObfuscationConfig(latent="random")


def test_errors(obf1, frames):
    with pytest.raises(MedcloakError, match="call fit"):
        Obfuscator(K1, config=ObfuscationConfig(vae=TINY)).obfuscate(frames)
    with pytest.raises(MedcloakError, match="resize"):
        obf1.obfuscate(np.zeros((2, 32, 32), np.float32))
    with pytest.raises(MedcloakError):
        obf1.obfuscate(np.full((16, 16), np.nan, np.float32))


def test_save_load_roundtrip_modes_and_key_binding(obf1, frames, tmp_path):
    d = obf1.save(tmp_path / "model")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in os.listdir(d):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    doc = json.loads((d / "obfuscator.json").read_text())
    assert doc["key_fingerprint"] == K1.fingerprint and doc["model_fingerprint"] == obf1.model_fingerprint
    back = Obfuscator.load(d, K1)
    assert back.model_fingerprint == obf1.model_fingerprint
    assert np.array_equal(back.obfuscate(frames), obf1.obfuscate(frames))
    with pytest.raises(MedcloakError, match=f"model was fitted under key {K1.short_fingerprint}, not {K2.short_fingerprint}"):
        Obfuscator.load(d, K2)
    with pytest.raises(MedcloakError, match="already holds"):
        obf1.save(d)
    # tampering with the weights is detected
    vae = d / "vae.pt"
    data = bytearray(vae.read_bytes())
    data[-100] ^= 1
    vae.write_bytes(bytes(data))
    with pytest.raises(MedcloakError, match="modified"):
        Obfuscator.load(d, K1)
    with pytest.raises(MedcloakError, match="not a medcloak model"):
        Obfuscator.load(tmp_path, K1)


def test_saved_model_holds_no_secret(obf1, tmp_path):
    d = obf1.save(tmp_path / "m")
    blob = b"".join((d / n).read_bytes() for n in os.listdir(d)) + repr(obf1).encode()
    secret = K1._secret
    for form in (secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)):
        assert form not in blob


def test_config_roundtrip():
    c = ObfuscationConfig(levels=32, out_levels=16, order="map-then-vae", latent="sampled", image_size=64, vae=TINY)
    assert ObfuscationConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(MedcloakError):
        ObfuscationConfig.from_dict({"levels": 256, "colour": "red"})


def test_cli_fit_then_obfuscate_with_model(tmp_path, capsys):
    from medcloak.cli import main
    from medcloak.io.dataset import Record, write_manifest
    from medcloak.io.images import write_png
    from medcloak.io.load import read_frames

    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    records = []
    for i in range(10):
        write_png(data / "frames" / f"f{i}.png", rng.random((20, 20)))  # resized to --size 16
        records.append(Record(f"frames/f{i}.png", "LCA" if i % 2 else "RCA", f"p{i // 2}",
                              "train" if i < 8 else "val"))
    write_manifest(data, records)
    key = tmp_path / "k.key"
    K1.save(key)
    model = tmp_path / "model"
    assert main(["fit", str(data), "--key", str(key), "--out", str(model), "--scheme", "paper", "--epochs", "1",
                 "--size", "16", "--batch-size", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "8 train / 2 val frames at 16x16" in out and "epoch   1/1" in out and "val_ssim" in out
    obf = Obfuscator.load(model, K1)
    assert obf.config.image_size == 16 and obf.config.vae.epochs == 1 and len(obf.history) == 1
    assert main(["fit", str(data), "--key", str(key), "--out", str(model), "--scheme", "paper",
                 "--epochs", "1"]) == 2  # no overwrite
    assert main(["obfuscate", str(data / "frames"), str(tmp_path / "out"), "--key", str(key), "--model", str(model),
                 "--no-progress"]) == 0
    assert "done 10, skipped 0, failed 0" in capsys.readouterr().out
    from medcloak.obfuscation.naming import pseudonym_name

    y = read_frames(tmp_path / "out" / pseudonym_name(K1, "f3.png", 0, "png"))[0].pixels
    assert y.shape == (16, 16)
    from medcloak.io.arrays import resize

    expected = obf.obfuscate(resize(read_frames(data / "frames" / "f3.png")[0].pixels, 16))
    assert np.array_equal(np.rint(y * 255), np.rint(expected * 255))


def test_with_options_shares_the_vae_and_changes_only_safe_fields(obf1, frames):
    sampled = obf1.with_options(latent="sampled")
    assert sampled.model is obf1.model and sampled.key_fingerprint == obf1.key_fingerprint
    assert sampled.config.latent == "sampled" and obf1.config.latent == "mean"
    a, b = obf1.vae_stage(frames[:2]), sampled.vae_stage(frames[:2])
    assert not np.array_equal(a, b)  # the key-derived latent noise changes the reconstruction
    np.testing.assert_array_equal(sampled.vae_stage(frames[:2]), b)  # and is deterministic
    coarse = obf1.with_options(levels=16)
    assert len(np.unique(coarse.obfuscate(frames[:2]))) <= 16
    with pytest.raises(MedcloakError, match="with_options changes only"):
        obf1.with_options(order="map-only")
