"""The default setting ([target]): what `medcloak fit` makes without --scheme, how obfuscate writes
it, and the demo comparison that puts it beside the paper's scheme."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medcloak.cli import main
from medcloak.io.dataset import Record, write_manifest
from medcloak.io.images import write_png
from medcloak.keys import Key
from medcloak.obfuscation.scheme import DEFAULT_OPTIONS, DEFAULT_SCHEME, load_scheme
from medcloak.study.compare import compare_preset


@pytest.fixture()
def dataset(tmp_path):
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    records = []
    for i in range(8):
        write_png(data / "frames" / f"f{i}.png", rng.random((32, 32)))
        records.append(Record(f"frames/f{i}.png", "LCA" if i % 2 else "RCA", f"p{i // 2}", "train" if i < 6 else "val"))
    write_manifest(data, records)
    key = tmp_path / "k.key"
    Key.generate().save(key)
    return data, key


def test_fit_without_scheme_makes_the_default_setting_and_obfuscate_writes_it(dataset, tmp_path, capsys):
    data, key = dataset
    model = tmp_path / "model"
    assert main(["fit", str(data), "--key", str(key), "--out", str(model), "--size", "32", "--no-progress"]) == 0
    scheme = load_scheme(model, Key.load(key))
    assert scheme.name == DEFAULT_SCHEME and {k: getattr(scheme.config, k) for k in DEFAULT_OPTIONS} == DEFAULT_OPTIONS
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["obfuscate", str(data / "frames"), str(out), "--key", str(key), "--model", str(model),
                 "--no-progress"]) == 0  # real-valued output: --format auto picks npy
    files = sorted(out.rglob("*.npy"))
    assert len(files) == 8 and not list(out.rglob("*.png"))
    cell = DEFAULT_OPTIONS["cell"]
    assert np.load(files[0]).shape[-2:] == (32 // cell, 32 // cell)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert any(r.get("format") == "npy" for r in lines)


def test_paper_options_without_scheme_paper_are_refused(dataset, tmp_path, capsys):
    data, key = dataset
    assert main(["fit", str(data), "--key", str(key), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--no-progress"]) == 2
    assert "--scheme paper" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_demo_comparison_puts_the_default_beside_the_paper():
    c = compare_preset("demo")
    schemes = [(s.scheme, s.options) for s in c.settings]
    assert schemes == [(DEFAULT_SCHEME, DEFAULT_OPTIONS), ("paper", {"levels": 256})]
    assert c.base.victim_keys >= 5 and c.base.t4_restarts >= 1 and 10 in c.base.t1_n
    frontier = compare_preset("frontier")
    assert len(frontier.settings) > 5 and frontier.base.max_epochs == 15  # the recipe it was measured with


def test_the_demo_study_preset_uses_the_default_and_tiny_stays_on_the_paper():
    from medcloak.study import preset

    demo = preset("demo")
    assert (demo.scheme, demo.scheme_options) == (DEFAULT_SCHEME, DEFAULT_OPTIONS)
    assert preset("tiny").scheme == preset("paper").scheme == "paper"
    pair = compare_preset("demo")
    assert pair.settings[1].study_config(pair.base).scheme_options == {}  # the paper's row takes no DP-Pix options
