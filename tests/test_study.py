"""The end-to-end study on the ``tiny`` preset: artifacts, report, caching, config checks."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
from dataclasses import replace

import pytest

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.study import STAGES, load_config, preset, run_study
from medcloak.study.config import StudyConfig, config_hash
from medcloak.report.html import EMBEDDED, FIGURES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARTIFACTS = ["report.html", "metrics.json", "utility.csv", "attacks.csv", "overhead.csv", "config.toml",
             "study.log", "study.json", "secret/key.json", "secret/model/obfuscator.json",
             *[f"figures/{f}" for f in FIGURES], *[f"stages/{s}/done.json" for s in STAGES]]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("study") / "tiny"
    report = run_study(preset("tiny"), out, progress=False)
    return out, report


def _secret_hex(out) -> str:
    return json.loads((out / "secret" / "key.json").read_text())["secret"]


def _log_tail(out, since: int) -> str:
    return (out / "study.log").read_text()[since:]


def test_every_artifact_is_written(tiny_run):
    out, report = tiny_run
    assert report == out / "report.html"
    missing = [a for a in ARTIFACTS if not (out / a).is_file()]
    assert not missing
    assert stat.S_IMODE(os.stat(out / "secret" / "key.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "secret").st_mode) == 0o700
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_json_has_the_expected_keys(tiny_run):
    out, _ = tiny_run
    m = json.loads((out / "metrics.json").read_text())
    for side in ("original", "obfuscated"):
        acc = m["utility"][side]["accuracy"]
        assert 0.0 <= acc["value"] <= 1.0 and acc["ci_low"] <= acc["value"] <= acc["ci_high"]
        assert m["utility"][side]["n_test"] == m["data"]["frames_per_split"]["test"]
    assert m["utility"]["same_recipe_object"] is True
    threats = {r["threat"] for r in m["attacks"]["rows"]}
    assert {"obfuscated", "prior", "T0", "T1", "T2", "T3", "T4"} <= threats
    t1 = [r for r in m["attacks"]["rows"] if r["threat"] == "T1"]
    assert [r["n_pairs"] for r in t1] == [4, 16]
    assert any(r["figure"].startswith("epoch time ratio") for r in m["overhead"]["rows"])
    assert m["data"]["provenance"] == "semi-synthetic"
    assert "data_range=1.0" in m["metric_settings"]["ssim"] and "sigma=1.5" in m["metric_settings"]["ssim"]
    assert set(m["versions"]) >= {"medcloak", "torch", "numpy"}
    key = Key.load(out / "secret" / "key.json")
    assert m["key"]["fingerprint"] == key.fingerprint
    assert m["config"] == preset("tiny").to_dict()


def test_the_secret_appears_nowhere_but_the_key_file(tiny_run):
    out, _ = tiny_run
    secret = _secret_hex(out)
    leaks = [p for p in out.rglob("*") if p.is_file() and p.name != "key.json"
             and p.suffix in (".json", ".html", ".csv", ".log", ".toml") and secret in p.read_text(errors="replace")]
    assert not leaks


def test_report_is_self_contained(tiny_run):
    out, _ = tiny_run
    page = (out / "report.html").read_text()
    srcs = re.findall(r"src=['\"]([^'\"]*)", page)
    assert len(srcs) == len(EMBEDDED) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page
    assert "SEMI-SYNTHETIC" in page
    assert json.loads((out / "metrics.json").read_text())["key"]["short_fingerprint"] in page


def test_rerun_skips_every_stage_and_touches_nothing(tiny_run):
    out, _ = tiny_run
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "study.log"]
    before = {p: p.stat().st_mtime_ns for p in files}
    since = len((out / "study.log").read_text())
    run_study(preset("tiny"), out, progress=False)
    log = _log_tail(out, since)
    for stage in STAGES:
        assert re.search(rf"stage {stage}\s+already done", log), stage
    assert " running" not in log and "every stage was already done" in log
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert sorted(p for p in out.rglob("*") if p.is_file() and p.name != "study.log") == sorted(files)


def test_a_changed_config_or_key_is_refused(tiny_run, tmp_path):
    out, _ = tiny_run
    before = (out / "study.json").read_text()
    with pytest.raises(MedcloakError, match="another configuration.*--force"):
        run_study(replace(preset("tiny"), seed=1), out, progress=False)
    other = Key.generate()
    other.save(tmp_path / "other.key")
    with pytest.raises(MedcloakError, match="another key"):
        run_study(preset("tiny"), out, progress=False, key_file=tmp_path / "other.key")
    assert (out / "study.json").read_text() == before


def test_a_rerun_after_a_lost_stage_reruns_it_and_every_later_stage(tiny_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run[0], out)
    (out / "stages" / "utility" / "done.json").unlink()
    since = len((out / "study.log").read_text())
    run_study(preset("tiny"), out, progress=False)
    log = _log_tail(out, since)
    ran = set(re.findall(r"stage (\w+)\s+running", log))
    assert ran == {"utility", "attacks", "overhead", "readers", "report"}


def test_readers_summary_is_rendered_and_force_discards_another_config(tiny_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run[0], out)
    summary = {"conditions": {"original": {"mean_visibility": 4.25, "artery_accuracy": 0.875},
                              "obfuscated": {"mean_visibility": 1.5, "artery_accuracy": 0.5}},
               "fleiss_kappa_artery": 0.6125}
    (out / "readers").mkdir(exist_ok=True)
    (out / "readers" / "summary.json").write_text(json.dumps(summary))
    since = len((out / "study.log").read_text())
    run_study(preset("tiny"), out, progress=False)
    assert set(re.findall(r"stage (\w+)\s+running", _log_tail(out, since))) == {"report"}
    page = (out / "report.html").read_text()
    assert "mean_visibility" in page and "4.250" in page and "0.613" in page
    assert json.loads((out / "metrics.json").read_text())["readers"] == summary

    key_before = (out / "secret" / "key.json").read_bytes()
    changed = replace(preset("tiny"), seed=1)
    run_study(changed, out, force=True, progress=False)
    doc = json.loads((out / "study.json").read_text())
    assert doc["config_hash"] == config_hash(changed)
    assert (out / "secret" / "key.json").read_bytes() == key_before  # the key is kept
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 1


def test_force_never_discards_reader_answers(tiny_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run[0], out)
    (out / "readers").mkdir(exist_ok=True)
    (out / "readers" / "answers.sqlite").write_bytes(b"answers")
    with pytest.raises(MedcloakError, match="reader answers"):
        run_study(replace(preset("tiny"), seed=2), out, force=True, progress=False)
    assert (out / "readers" / "answers.sqlite").read_bytes() == b"answers"


def test_cli_study_reruns_and_prints_the_report_path(tiny_run, capsys):
    import medcloak.cli.study  # noqa: F401 - registers the command (the lead lists it in _COMMAND_MODULES)
    from medcloak.cli import main

    out, _ = tiny_run
    assert main(["study", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed and "semi-synthetic" in printed


# ----------------------------------------------------------------------------- config


def test_presets_have_the_promised_sizes():
    assert preset("tiny").size == 32 and preset("tiny").vae_epochs == 1 and preset("tiny").max_epochs == 1
    assert preset("demo").size <= 128 and preset("demo").device == "cpu"
    assert preset("paper").size >= 256 and preset("paper").device == "auto"
    assert preset("paper").vae_preset == "fidelity" and preset("demo").vae_preset == "fast"
    assert load_config("demo") is preset("demo")
    with pytest.raises(MedcloakError, match="unknown preset"):
        load_config("huge")


def test_toml_round_trip_and_relative_source(tmp_path):
    cfg = replace(preset("tiny"), name="mine", threats=("T1", "T4"), t1_n=(3,))
    path = tmp_path / "mine.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    (tmp_path / "data").mkdir()
    path.write_text('base = "tiny"\n[data]\nsource = "data"\n')
    loaded = load_config(path)
    assert loaded.source == str((tmp_path / "data").resolve()) and loaded.provenance == "real"
    assert loaded.name == "mine" and loaded.size == 32


@pytest.mark.parametrize("text, key", [
    ("[attacks]\nstepz = 3\n", "attacks.stepz"),
    ("[colour]\nx = 1\n", "colour"),
    ("speed = 1\n", "speed"),
    ('[data]\nsize = "big"\n', "data.size"),
    ("[data]\nsize = 30\n", "data.size"),
    ('[attacks]\nthreats = ["T9"]\n', "attacks.threats"),
    ("[utility]\nmax_epochs = 0\n", "utility.max_epochs"),
    ('[run]\ndevice = "tpu"\n', "run.device"),
    ('[vae]\npreset = "huge"\n', "vae.preset"),
    ('base = "nope"\n', "base"),
])
def test_toml_errors_name_the_key_and_the_file(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MedcloakError) as err:
        load_config(path)
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)


def test_toml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[data\n")
    with pytest.raises(MedcloakError, match="not valid TOML") as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_config_hash_ignores_the_name_only():
    a = preset("tiny")
    assert config_hash(a) == config_hash(replace(a, name="other"))
    assert config_hash(a) != config_hash(replace(a, levels=64))
    assert isinstance(StudyConfig().threats, tuple)


def test_a_user_folder_runs_as_real_data_with_stand_in_masks(tmp_path):
    import csv

    import numpy as np

    from medcloak.synth import generate, write_synth

    data = generate(48, size=32, seed=3, frames_per_patient=4)
    write_synth(tmp_path / "ds", data, seed=3, progress=False)
    rows = list(csv.DictReader((tmp_path / "ds" / "labels.csv").open()))
    cols = [c for c in rows[0] if c != "mask"]  # a dataset without vessel masks
    with (tmp_path / "ds" / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "real.toml").write_text('base = "tiny"\n[data]\nsource = "ds"\n[attacks]\nthreats = ["T1", "T4"]\n')
    key = Key.generate()
    key.save(tmp_path / "hospital.key")
    out = tmp_path / "out"
    run_study(load_config(tmp_path / "real.toml"), out, progress=False, key_file=tmp_path / "hospital.key")
    m = json.loads((out / "metrics.json").read_text())
    assert m["key"]["fingerprint"] == key.fingerprint and not (out / "secret" / "key.json").exists()
    assert stat.S_IMODE(os.stat(out / "secret").st_mode) == 0o700 and (out / "secret" / "model").is_dir()
    assert m["data"]["provenance"] == "real" and m["data"]["n_frames"] == 48
    assert "NO vessel masks" in m["data"]["masks"]
    assert m["data"]["stenosis_frames"] == int(np.sum(data.stenosis))
    assert {r["threat"] for r in m["attacks"]["rows"]} == {"obfuscated", "prior", "T1", "T4"}
    page = (out / "report.html").read_text()
    assert "REAL data" in page and "SEMI-SYNTHETIC" not in page
