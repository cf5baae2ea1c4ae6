"""The Scheme plug-in interface: registry, the paper's scheme byte for byte, model folders, and a
test-only scheme the whole study runs on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

import toy_schemes  # noqa: F401 - registers "identity" and "monotone"
from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.scheme import get_scheme, load_scheme, make_scheme, scheme_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEY = Key(bytes(range(32)))
FRAMES = np.random.default_rng(0).random((4, 24, 24), dtype=np.float32)

# SHA-256 of Obfuscator(KEY, map-only, L).obfuscate(FRAMES), computed with the code as it was
# before schemes existed (commit 6bc1cb3): the scheme must not change one output byte.
FROZEN = {256: "b42e88bb9695a903c45f35026d3418daf43b8caea69ca2ac4799eb196f5edc8b",
          16: "1ac3175c7f726efa551d0ae0d58536125350ca0bd8fee00378138f141b15310a"}


@pytest.mark.parametrize("levels", sorted(FROZEN))
def test_paper_scheme_map_only_matches_the_frozen_hash(levels):
    s = get_scheme("paper")(order="map-only", levels=levels).fit(None, KEY)
    assert hashlib.sha256(s.apply(FRAMES).tobytes()).hexdigest() == FROZEN[levels]


@pytest.fixture(scope="module")
def fitted_paper():
    from medcloak.obfuscation.vae import VAEConfig

    cfg = ObfuscationConfig(levels=64, vae=VAEConfig(epochs=1, base_channels=8, seed=0))
    return make_scheme("paper", cfg).fit(FRAMES[:3], KEY, val=FRAMES[3:])


def test_paper_scheme_equals_its_engine_and_survives_save_load(fitted_paper, tmp_path):
    s = fitted_paper
    engine = s.obfuscator
    assert isinstance(engine, Obfuscator) and np.array_equal(s.apply(FRAMES), engine.obfuscate(FRAMES))
    s.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "scheme.json").read_text())
    assert doc["scheme"] == "paper" and doc["config_hash"] == s.config_hash and "secret" not in json.dumps(doc)
    back = load_scheme(tmp_path / "m", KEY, expect="paper")
    assert back.model_fingerprint == s.model_fingerprint == engine.model_fingerprint
    assert np.array_equal(back.apply(FRAMES), s.apply(FRAMES))
    # a folder written by Obfuscator.save alone (before schemes) still loads as the paper scheme
    engine.save(tmp_path / "old")
    assert np.array_equal(load_scheme(tmp_path / "old", KEY).apply(FRAMES), s.apply(FRAMES))


def test_model_folder_refuses_another_scheme_key_or_tampering(fitted_paper, tmp_path):
    fitted_paper.save(tmp_path / "m")
    with pytest.raises(MedcloakError, match="holds scheme 'paper', not 'identity'"):
        load_scheme(tmp_path / "m", KEY, expect="identity")
    with pytest.raises(MedcloakError, match="fitted under key"):
        load_scheme(tmp_path / "m", Key.generate())
    ident = make_scheme("identity").fit(None, KEY)
    ident.save(tmp_path / "i")
    doc = json.loads((tmp_path / "i" / "scheme.json").read_text())
    doc["scheme"] = "monotone"
    (tmp_path / "i" / "scheme.json").write_text(json.dumps(doc))
    with pytest.raises(MedcloakError, match="modified or damaged"):
        load_scheme(tmp_path / "i", KEY)
    with pytest.raises(MedcloakError, match="not a medcloak model folder"):
        load_scheme(tmp_path, KEY)


def test_registry_and_config_hash():
    assert {"paper", "identity", "monotone"} <= set(scheme_names())
    with pytest.raises(MedcloakError, match="unknown scheme 'nope'"):
        get_scheme("nope")
    a, b = make_scheme("monotone", {"gamma": 0.5}), make_scheme("monotone", {"gamma": 2.0})
    assert a.config_hash != b.config_hash and a.config_hash == make_scheme("monotone", {"gamma": 0.5}).config_hash
    with pytest.raises(MedcloakError, match="not fitted"):
        a.apply(FRAMES)


def test_rekey_shares_the_vae_but_not_the_table(fitted_paper):
    other = fitted_paper.rekey(Key.generate())
    assert other.obfuscator.model is fitted_paper.obfuscator.model
    assert not np.array_equal(other.apply(FRAMES), fitted_paper.apply(FRAMES))  # another key, another table
    assert np.array_equal(other.obfuscator.vae_stage(FRAMES), fitted_paper.obfuscator.vae_stage(FRAMES))
    m2v = make_scheme("paper", ObfuscationConfig(order="map-then-vae", levels=16,
                                                 vae=replace(fitted_paper.config.vae))).fit(FRAMES, KEY)
    with pytest.raises(MedcloakError, match="fit it again"):
        m2v.rekey(Key.generate())


def test_cli_obfuscate_refuses_a_model_of_another_scheme(fitted_paper, tmp_path):
    from medcloak.cli import main
    from medcloak.io.images import write_png

    key_file = tmp_path / "k.json"
    KEY.save(key_file)
    fitted_paper.save(tmp_path / "m")
    (tmp_path / "in").mkdir()
    write_png(tmp_path / "in" / "a.png", FRAMES[0])
    assert main(["obfuscate", str(tmp_path / "in"), str(tmp_path / "out"), "--key", str(key_file),
                 "--model", str(tmp_path / "m"), "--scheme", "monotone", "--no-progress"]) == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert main(["obfuscate", str(tmp_path / "in"), str(tmp_path / "out"), "--key", str(key_file),
                 "--model", str(tmp_path / "m"), "--scheme", "paper", "--no-progress"]) == 0


def test_the_whole_study_runs_on_a_test_only_scheme_and_every_attack_succeeds(tmp_path):
    """Identity (256 grey levels): every reconstruction attack must recover the frames."""
    from medcloak.study import preset, run_study

    config = replace(preset("tiny"), scheme="identity", attack_steps=300, t0_steps=60, t1_n=(32,),
                     n_attacker=64)
    out = tmp_path / "id"
    run_study(config, out, progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["obfuscation"]["config"] == {} and m["model_fingerprint"]
    rows = {(r["threat"], r["variant"]): r for r in m["attacks"]["rows"]}
    recon = [r for r in m["attacks"]["rows"] if r["threat"] in ("T1", "T2", "T3", "T4")]
    assert {r["threat"] for r in recon} == {"T1", "T2", "T3", "T4"}
    for r in recon:
        assert r["ssim"] >= 0.9, recon
    assert rows[("obfuscated", "human-perception baseline")]["ssim"] >= 0.99
    assert "identity" in (out / "report.html").read_text()


@pytest.mark.parametrize("name", ["blockwise", "randenc", "pixelate", "blur", "svd", "bottleneck"])
def test_the_study_runs_on_every_published_scheme(name, tmp_path):
    """Each rival scheme goes through the whole study with the cloud model its output needs; an
    attack that does not fit its output is skipped with the reason, never run on nonsense."""
    from medcloak.study import preset, run_study
    from medcloak.study.compare import compare_preset

    setting = next(s for s in compare_preset("frontier").settings if s.scheme == name)
    config = replace(setting.study_config(preset("tiny")), threats=("T0", "T1", "T3", "T4"), stenosis_task=False)
    run_study(config, tmp_path / name, progress=False)
    m = json.loads((tmp_path / name / "metrics.json").read_text())
    skipped = m["attacks"]["meta"].get("not_applicable", {})
    ran = {r["threat"] for r in m["attacks"]["rows"]} - {"obfuscated", "prior", "T0-handmade"}
    assert ran | set(skipped) == {"T0", "T1", "T3", "T4"} and not ran & set(skipped)
    assert ("T4" in skipped) == (name != "blockwise" or setting.options.get("levels") is None)
    if name == "randenc":  # patch tokens: no image attack fits; the scheme-specific ones must
        assert {"T0", "T1", "T3"} <= set(skipped)
    if name == "bottleneck":  # fitted with labels: a cross-domain attacker has none
        assert "labels" in skipped["T3"]
    assert 0.0 <= m["utility"]["obfuscated"]["accuracy"]["value"] <= 1.0


def test_patch_tokens_are_never_read_as_an_image_even_when_their_shape_matches():
    """randenc at 64 px with 8 px patches and width 64 releases (64, 64) tokens per frame: the
    image attacks must still skip it (they once ran on the tokens laid out as a 64x64 picture)."""
    from medcloak.attacks.own import image_like

    tokens = np.zeros((2, 64, 64), np.float32)
    assert image_like(tokens, (64, 64)) is not None
    assert image_like(tokens, (64, 64), output="patch tokens") is None
    s = make_scheme("randenc", {"patch": 8, "width": 64}).fit(None, KEY)
    frames = np.random.default_rng(1).random((2, 64, 64), dtype=np.float32)
    assert s.apply(frames).shape == (2, 64, 64) and s.output == "patch tokens"
