"""The VAE's inference engines (``ObfuscationConfig.engine``): fp32 keeps every byte and fingerprint
of before; bf16 is another recorded model whose outputs never mix with fp32's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.batch import obfuscate_tree
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.vae import VAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEY = Key(bytes(range(32)))
TINY = VAEConfig(base_channels=4, latent_channels=2, downsamples=1, residual_units=0, epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def fitted():
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    obf = Obfuscator(KEY, config=ObfuscationConfig(image_size=32, vae=TINY))
    obf.fit(rng.random((8, 32, 32)).astype(np.float32), progress=False)
    frames = np.clip(rng.random((4, 32, 32)) * 0.6 + np.linspace(0, 0.4, 32), 0, 1).astype(np.float32)
    return obf, frames


def test_config_validates_the_engine_and_keeps_fp32_out_of_the_fingerprinted_dict():
    assert ObfuscationConfig().engine == "fp32" and "engine" not in ObfuscationConfig().to_dict()
    bf = ObfuscationConfig(engine="bf16")
    assert bf.to_dict()["engine"] == "bf16" and ObfuscationConfig.from_dict(bf.to_dict()) == bf
    with pytest.raises(MedcloakError, match="engine must be one of fp32, bf16"):
        ObfuscationConfig(engine="fp16")
    with pytest.raises(MedcloakError, match="map-only has no VAE"):
        ObfuscationConfig(order="map-only", engine="bf16")


def test_bf16_is_another_model_with_close_vae_outputs_and_other_obfuscated_frames(fitted):
    obf, frames = fitted
    bf = obf.with_options(engine="bf16")
    assert bf.config.engine == "bf16" and bf.model_fingerprint != obf.model_fingerprint
    assert obf.with_options(engine="fp32").model_fingerprint == obf.model_fingerprint
    v32, v16 = obf.vae_stage(frames), bf.vae_stage(frames)
    diff = np.abs(v32 - v16)
    assert 0 < diff.max() < 0.02  # the same network, in other arithmetic
    o32, o16 = obf.obfuscate(frames), bf.obfuscate(frames)
    assert (o32 != o16).mean() > 0.05  # a level moved by bf16 lands elsewhere in the keyed map
    assert np.array_equal(o16, bf.obfuscate(frames))  # deterministic, like fp32
    assert np.array_equal(o16, bf.with_options(latent="mean").obfuscate(frames))


def test_bf16_model_folder_round_trip_manifest_and_no_mixing_with_fp32(fitted, tmp_path):
    obf, frames = fitted
    m32 = obf.save(tmp_path / "m32")
    m16 = obf.with_options(engine="bf16").save(tmp_path / "m16")
    loaded = Obfuscator.load(m16, KEY)
    assert loaded.config.engine == "bf16"
    assert np.array_equal(loaded.obfuscate(frames), obf.with_options(engine="bf16").obfuscate(frames))
    assert json.loads((m16 / "obfuscator.json").read_text())["config"]["engine"] == "bf16"
    assert "engine" not in json.loads((m32 / "obfuscator.json").read_text())["config"]

    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(np.rint(f * 255).astype(np.uint8)).save(src / f"f{i}.png")
    s16 = obfuscate_tree(src, tmp_path / "o16", key=KEY, model_dir=m16, progress=False)
    s32 = obfuscate_tree(src, tmp_path / "o32", key=KEY, model_dir=m32, progress=False)
    assert s16.ok and s32.ok and (s16.vae_engine, s32.vae_engine) == ("bf16", "fp32")
    recs = [json.loads(x) for x in (tmp_path / "o16" / "manifest.jsonl").read_text().splitlines()]
    assert {r["vae_engine"] for r in recs} == {"bf16"}
    assert {r["model_fingerprint"] for r in recs} == {loaded.model_fingerprint}
    outs = lambda d: {p.relative_to(d): p.read_bytes() for p in d.rglob("*.png")}  # noqa: E731
    assert len(outs(tmp_path / "o16")) == 4 and outs(tmp_path / "o16").keys() == outs(tmp_path / "o32").keys()
    assert outs(tmp_path / "o16") != outs(tmp_path / "o32")
    with pytest.raises(MedcloakError, match=r"another model .*VAE engine bf16.*VAE engine fp32"):
        obfuscate_tree(src, tmp_path / "o16", key=KEY, model_dir=m32, progress=False)
    two = obfuscate_tree(src, tmp_path / "o16b", key=KEY, model_dir=m16, workers=2, batch_size=1, progress=False)
    assert two.ok and outs(tmp_path / "o16b") == outs(tmp_path / "o16")  # same bytes in a spawned worker


def test_cli_fit_vae_engine(tmp_path, capsys):
    from medcloak.cli import main
    from medcloak.io.dataset import Record, write_manifest
    from medcloak.io.images import write_png

    rng = np.random.default_rng(6)
    data = tmp_path / "data"
    records = []
    for i in range(6):
        write_png(data / "frames" / f"f{i}.png", rng.random((16, 16)))
        records.append(Record(f"frames/f{i}.png", "LCA" if i % 2 else "RCA", f"p{i // 2}", "train"))
    write_manifest(data, records)
    key = tmp_path / "k.key"
    KEY.save(key)
    args = ["fit", str(data), "--key", str(key), "--scheme", "paper", "--epochs", "1", "--size", "16",
            "--batch-size", "4", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "m16"), "--vae-engine", "bf16"]) == 0
    assert "engine bf16" in capsys.readouterr().out
    assert Obfuscator.load(tmp_path / "m16", KEY).config.engine == "bf16"
    assert main([*args, "--out", str(tmp_path / "bad"), "--vae-engine", "fp16"]) == 2
    assert "engine must be one of fp32, bf16" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "obfuscator.json").exists()
