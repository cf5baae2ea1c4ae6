"""medcloak.learn: the cloud's classifier, its recipe, metrics and the deployed predict path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from medcloak.cli import main
from medcloak.errors import MedcloakError
from medcloak.io.dataset import Record, write_manifest
from medcloak.io.images import write_png
from medcloak.learn import Recipe, compare, evaluate, train_classifier
from medcloak.learn.artifacts import RUN_FILES, write_run
from medcloak.learn.evaluate import binary_metrics
from medcloak.study.grid import study_key
from medcloak.learn.models import ClassifierConfig, build_classifier, load_classifier
from medcloak.learn.predict import predict_proba
from medcloak.learn.train import augment_batch, encode_labels
from medcloak.obfuscation.mapping import IntensityMap

SIZE = 16
FAST = Recipe(max_epochs=4, batch_size=16, patience=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy(n: int, *, seed: int, size: int = SIZE) -> tuple[np.ndarray, list[str]]:
    """Trivially separable: RCA frames hold a bright square on a noisy dark background."""
    rng = np.random.default_rng(seed)
    y = ["LCA" if i % 2 == 0 else "RCA" for i in range(n)]
    x = (rng.random((n, size, size)) * 0.3).astype(np.float32)
    lo, hi = size // 4, 3 * size // 4
    for i, lab in enumerate(y):
        if lab == "RCA":
            x[i, lo:hi, lo:hi] += 0.6
    return x, y


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    xtr, ytr = toy(64, seed=0)
    xva, yva = toy(32, seed=1)
    return train_classifier(xtr, ytr, xva, yva, recipe=FAST, progress=False)


# -- training ---------------------------------------------------------------------------------
def test_learns_separable_toy(trained):
    xte, yte = toy(48, seed=2)
    m = evaluate(trained.model, xte, yte, n_boot=50)
    assert m["accuracy"]["value"] >= 0.95
    assert trained.classes == ["LCA", "RCA"]
    assert [r["epoch"] for r in trained.history] == list(range(1, trained.epochs + 1))
    assert all(r["seconds"] > 0 for r in trained.history) and trained.mean_epoch_seconds > 0


def test_early_stopping_stops_and_restores_best():
    rng = np.random.default_rng(5)
    x = rng.random((32, SIZE, SIZE)).astype(np.float32)
    y = ["LCA", "RCA"] * 16
    rng.shuffle(y)  # labels unrelated to the frames: validation loss cannot keep improving
    recipe = Recipe(max_epochs=40, batch_size=16, patience=2, lr=3e-3)
    res = train_classifier(x[:24], y[:24], x[24:], y[24:], recipe=recipe, progress=False)
    assert res.stopped_early and res.epochs < 40
    assert res.epochs == res.best_epoch + recipe.patience
    best_val = min(r["val_loss"] for r in res.history)
    assert res.history[res.best_epoch - 1]["val_loss"] == best_val
    # the restored weights are the best epoch's: re-evaluating gives its validation loss
    with torch.no_grad():
        logits = res.model(torch.from_numpy(x[24:]))
    t = torch.tensor(encode_labels(y[24:], res.classes)[0], dtype=torch.float32)
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, t))
    assert loss == pytest.approx(best_val, rel=1e-4)


def test_training_is_seeded():
    xtr, ytr = toy(32, seed=0)
    xva, yva = toy(16, seed=1)
    r = Recipe(max_epochs=2, batch_size=16)
    a = train_classifier(xtr, ytr, xva, yva, recipe=r, progress=False)
    b = train_classifier(xtr, ytr, xva, yva, recipe=r, progress=False)
    c = train_classifier(xtr, ytr, xva, yva, recipe=r.with_(seed=1), progress=False)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] != [h["val_loss"] for h in c.history]


def test_augmentation_keeps_every_grey_level():
    table_map = IntensityMap.from_key(study_key(0), levels=16)
    x = torch.from_numpy(table_map(np.random.default_rng(0).random((6, SIZE, SIZE)).astype(np.float32)))
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, max_shift=0.25, hflip=True, generator=g)
    assert out.shape == x.shape and not torch.equal(out, x)
    for a, b in zip(out, x):
        assert set(a.unique().tolist()) <= set(b.unique().tolist())


def test_level_embedding_learns_keyed_map():
    key = study_key(1)
    mapping = IntensityMap.from_key(key, levels=16)
    xtr, ytr = toy(64, seed=0)
    xva, yva = toy(32, seed=1)
    xte, yte = toy(48, seed=2)
    res = train_classifier(mapping(xtr), ytr, mapping(xva), yva, recipe=FAST, input_mode="level-embedding",
                           levels=16, progress=False)
    assert res.config.input_mode == "level-embedding"
    assert evaluate(res.model, mapping(xte), yte, n_boot=20)["accuracy"]["value"] >= 0.9


def test_compare_uses_one_recipe_object():
    mapping = IntensityMap.from_key(study_key(2), levels=16)
    data = {s: toy(n, seed=k) for k, (s, n) in enumerate((("train", 32), ("val", 16), ("test", 16)))}
    obf = {s: (mapping(x), y) for s, (x, y) in data.items()}
    recipe = Recipe(max_epochs=2, batch_size=16)
    cmp = compare(data, obf, recipe=recipe, n_boot=20, progress=False)
    assert cmp.original.recipe is recipe and cmp.obfuscated.recipe is recipe and cmp.recipe is recipe
    assert cmp.original.recipe == cmp.obfuscated.recipe
    assert cmp.original.epochs == cmp.obfuscated.epochs == 2 or cmp.original.stopped_early
    assert cmp.overhead_ratio > 0
    with pytest.raises(Exception):
        recipe.lr = 1.0  # frozen


def test_bad_inputs_are_one_line_errors():
    x, y = toy(8, seed=0)
    with pytest.raises(MedcloakError, match="only one class"):
        encode_labels(["LCA"] * 4)
    with pytest.raises(MedcloakError, match="frames but"):
        train_classifier(x, y[:5], x, y, recipe=FAST, progress=False)
    with pytest.raises(MedcloakError, match="levels"):
        build_classifier("small", input_mode="level-embedding")
    with pytest.raises(MedcloakError, match="model"):
        build_classifier("huge")


def test_sizes_differ_and_any_frame_size_works():
    small, wide = build_classifier("small", seed=0), build_classifier("wide", seed=0)
    n_small = sum(p.numel() for p in small.parameters())
    n_wide = sum(p.numel() for p in wide.parameters())
    assert n_wide > 3 * n_small
    for net in (small, wide, build_classifier("densenet", seed=0)):
        assert net(torch.rand(2, 32, 24)).shape == (2,)


# -- metrics ----------------------------------------------------------------------------------
def test_metrics_equal_sklearn_and_cis_contain_point():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    prob = np.clip(0.5 * y + 0.6 * rng.random(60) - 0.05, 0, 1)
    m = binary_metrics(y, prob, n_boot=300, seed=7)
    pred = (prob >= 0.5).astype(int)
    expect = {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred),
        "recall": recall_score(y, pred),
        "f1": f1_score(y, pred),
        "roc_auc": roc_auc_score(y, prob),
    }
    for name, value in expect.items():
        assert m[name]["value"] == pytest.approx(value, abs=1e-12), name
        assert m[name]["ci_low"] <= m[name]["value"] <= m[name]["ci_high"], name
        assert m[name]["ci_low"] < m[name]["ci_high"], name
    tn = int(((y == 0) & (pred == 0)).sum())
    tp = int(((y == 1) & (pred == 1)).sum())
    assert m["confusion"][0][0] == tn and m["confusion"][1][1] == tp and sum(map(sum, m["confusion"])) == 60
    assert m["roc"]["fpr"][0] == 0.0 and m["roc"]["tpr"][-1] == 1.0
    again = binary_metrics(y, prob, n_boot=300, seed=7)
    other = binary_metrics(y, prob, n_boot=300, seed=8)
    assert again["accuracy"] == m["accuracy"]
    assert other["roc_auc"]["value"] == m["roc_auc"]["value"]
    assert (other["accuracy"]["ci_low"], other["accuracy"]["ci_high"]) != (
        m["accuracy"]["ci_low"], m["accuracy"]["ci_high"]) or (
        other["f1"]["ci_low"], other["f1"]["ci_high"]) != (m["f1"]["ci_low"], m["f1"]["ci_high"])


def test_patient_bootstrap_is_wider_for_correlated_frames():
    # 10 patients x 6 identical frames: resampling patients must see the real (patient) spread
    rng = np.random.default_rng(0)
    y = np.repeat(rng.integers(0, 2, 10), 6)
    prob = np.repeat(rng.random(10), 6)
    groups = np.repeat(np.arange(10), 6)
    frame = binary_metrics(y, prob, n_boot=400, seed=0)
    patient = binary_metrics(y, prob, n_boot=400, seed=0, groups=groups)
    width = lambda m: m["accuracy"]["ci_high"] - m["accuracy"]["ci_low"]  # noqa: E731
    assert width(patient) > width(frame)


# -- files and CLI -------------------------------------------------------------------------------
def test_write_run_and_model_round_trip(trained, tmp_path):
    xte, yte = toy(16, seed=3)
    m = evaluate(trained.model, xte, yte, classes=trained.classes, n_boot=20)
    write_run(tmp_path, trained, m)
    for name in RUN_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["test"]["accuracy"] == m["accuracy"] and doc["recipe"] == FAST.to_dict()
    assert doc["training"]["epochs"] == trained.epochs
    rows = list(csv.reader((tmp_path / "curves.csv").open()))
    assert rows[0][:3] == ["epoch", "train_loss", "train_acc"] and len(rows) == trained.epochs + 1
    conf = list(csv.reader((tmp_path / "confusion.csv").open()))
    assert conf[1][0] == "LCA" and sum(int(v) for r in conf[1:] for v in r[1:]) == 16
    model, info = load_classifier(tmp_path)
    assert info["classes"] == ["LCA", "RCA"] and tuple(info["image_size"]) == (SIZE, SIZE)
    np.testing.assert_array_equal(predict_proba(model, xte), predict_proba(trained.model, xte))


def _tiny_dataset(root, *, seed=0):
    records = []
    for split, n, s in (("train", 48, 0), ("val", 16, 1), ("test", 16, 2)):
        x, y = toy(n, seed=s + 10 * seed)
        for i in range(n):
            rel = f"frames/{split}_{i}.png"
            write_png(root / rel, x[i])
            records.append(Record(rel, y[i], f"{split}-p{i // 4}", split))
    write_manifest(root, records)


def test_train_cli_writes_all_files(tmp_path, capsys):
    _tiny_dataset(tmp_path / "data")
    out = tmp_path / "run"
    rc = main(["train", str(tmp_path / "data"), "--out", str(out), "--epochs", "3", "--batch-size", "16",
               "--n-boot", "50", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and str(out) in text
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["data"]["n_train"] == 48 and doc["data"]["n_test"] == 16
    assert doc["test"]["accuracy"]["value"] >= 0.9
    assert main(["train", str(tmp_path / "data"), "--out", str(out), "--no-progress"]) == 2  # no overwrite


def test_predict_cli_writes_expected_csv(trained, tmp_path):
    from medcloak.learn.models import save_classifier

    model_dir = tmp_path / "model"
    save_classifier(model_dir, trained.model, classes=trained.classes, image_size=trained.image_size)
    x, y = toy(6, seed=4)
    paths = []
    for i in range(6):
        p = tmp_path / "in" / f"f{i}.png"
        write_png(p, x[i])
        paths.append(str(p))
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pred.csv"
    rc = main(["predict", str(model_dir), *paths, str(tmp_path / "in" / "broken.png"), "--out", str(out),
               "--no-progress"])
    assert rc == 1  # one file failed, the others were predicted
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "frame", "label", "probability", "error"]
    ok = [r for r in rows if not r["error"]]
    assert [r["path"] for r in ok] == paths and all(r["frame"] == "0" for r in ok)
    assert [r["label"] for r in ok] == y  # the toy model is right on these
    prob = predict_proba(trained.model, np.stack([np.round(f * 255) / 255 for f in x]))
    expect = np.where(prob >= 0.5, prob, 1 - prob)
    np.testing.assert_allclose([float(r["probability"]) for r in ok], expect, atol=1e-5)
    assert all(0.5 <= float(r["probability"]) <= 1.0 for r in ok)
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and "broken.png" in bad[0]["error"]


def test_predict_cli_obfuscates_with_the_owner_key(tmp_path, capsys):
    from medcloak.learn.models import save_classifier
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    key = study_key(4)
    key.save(tmp_path / "k.key")
    obf = Obfuscator(key, config=ObfuscationConfig(levels=16, order="map-only"))
    obf.save(tmp_path / "obf")
    xtr, ytr = toy(64, seed=0)
    xva, yva = toy(32, seed=1)
    res = train_classifier(obf.obfuscate(xtr), ytr, obf.obfuscate(xva), yva, recipe=FAST, progress=False,
                           input_mode="level-embedding", levels=16)
    save_classifier(tmp_path / "m", res.model, classes=res.classes, image_size=res.image_size)
    x, y = toy(4, seed=5)
    for i in range(4):
        write_png(tmp_path / "in" / f"f{i}.png", x[i])
    capsys.readouterr()
    rc = main(["predict", str(tmp_path / "m"), str(tmp_path / "in"), "--key", str(tmp_path / "k.key"),
               "--obfuscator", str(tmp_path / "obf"), "--no-progress"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,frame,label,probability,error" and len(lines) == 5
    x8 = np.round(x * 255) / 255
    prob = predict_proba(res.model, obf.obfuscate(x8))
    got = [float(line.split(",")[3]) for line in lines[1:]]
    np.testing.assert_allclose(got, np.where(prob >= 0.5, prob, 1 - prob), atol=1e-5)
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "in"), "--key", str(tmp_path / "k.key")]) == 2


def test_utility_grid_rows_and_direct_view_hook():
    from medcloak.io.frameset import FrameSet
    from medcloak.study.grid import GridConfig, utility_grid

    x, y = toy(60, seed=6)
    data = FrameSet(x, y, [f"p{i // 3}" for i in range(60)], masks=x > 0.5)
    calls = []

    def hook(cfg, obf_test, masks_test, ignore_test):
        assert ignore_test is None  # the toy set has no catheter mask
        calls.append((cfg.name, obf_test.shape, masks_test.shape))
        return 0.25

    recipe = Recipe(max_epochs=1, batch_size=16)
    configs = [GridConfig("original"), GridConfig("map-only", 16, input_mode="level-embedding")]
    samples = {}
    rows = utility_grid(data, recipe=recipe, configs=configs, n_boot=20, direct_view=hook, progress=False,
                        samples=samples)
    assert set(samples) == {"original", *(r["config"] for r in rows)}
    assert samples["original"].shape == (SIZE, SIZE) and not np.array_equal(samples["original"], samples[rows[1]["config"]])
    assert [r["config"] for r in rows] == ["original/small", "map-only/L16/small/level-embedding"]
    assert rows[0]["ssim"] == 1.0 and rows[1]["ssim"] < 0.9
    assert rows[0]["direct_view_dice"] is None and rows[1]["direct_view_dice"] == 0.25
    assert len(calls) == 1 and calls[0][1] == calls[0][2] == (rows[1]["n_test"], SIZE, SIZE)
    assert rows[0]["overhead_ratio"] == 1.0 and rows[1]["overhead_ratio"] > 0
    for r in rows:
        assert r["accuracy_ci_low"] <= r["accuracy"] <= r["accuracy_ci_high"]
        assert r["n_train"] + r["n_test"] < 60


def test_vectorised_resample_metrics_equal_sklearn():
    from medcloak.learn.evaluate import resample_metrics

    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 40)
    prob = np.round(rng.random(40), 1)  # many ties
    idx = rng.integers(0, 40, (25, 40))
    got = resample_metrics(y[idx], prob[idx])
    for b in range(25):
        yy, pp = y[idx[b]], prob[idx[b]]
        pred = (pp >= 0.5).astype(int)
        assert got["accuracy"][b] == pytest.approx(accuracy_score(yy, pred))
        assert got["precision"][b] == pytest.approx(precision_score(yy, pred, zero_division=0))
        assert got["recall"][b] == pytest.approx(recall_score(yy, pred, zero_division=0))
        assert got["f1"][b] == pytest.approx(f1_score(yy, pred, zero_division=0))
        assert got["roc_auc"][b] == pytest.approx(roc_auc_score(yy, pp))
    one_class = resample_metrics(np.zeros((1, 5), int), np.full((1, 5), 0.7))
    assert np.isnan(one_class["roc_auc"][0]) and one_class["precision"][0] == 0.0


# -- the ViT and MLP families (schemes whose output is not a plain image) ---------------------
def _shuffle_blocks(x: np.ndarray, p: int, seed: int) -> np.ndarray:
    """A fixed block scrambling + one pixel shuffle inside every block + sign flips (block-wise encryption)."""
    rng = np.random.default_rng(seed)
    n, h, w = x.shape
    blocks = x.reshape(n, h // p, p, w // p, p).transpose(0, 1, 3, 2, 4).reshape(n, -1, p * p)
    blocks = blocks[:, rng.permutation(blocks.shape[1])][:, :, rng.permutation(p * p)]
    flip = rng.random(p * p) < 0.5
    blocks = np.where(flip, 1.0 - blocks, blocks)
    g = h // p
    return blocks.reshape(n, g, w // p, p, p).transpose(0, 1, 3, 2, 4).reshape(n, h, w).astype(np.float32)


def test_vit_learns_block_scrambled_frames_as_well_as_originals():
    """Patch = block: the patch embedding absorbs the pixel shuffle and flips, the position
    embedding the block scrambling (the claim of the block-wise schemes, shown on a toy task)."""
    torch.set_num_threads(1)
    xtr, ytr = toy(96, seed=0)
    xva, yva = toy(48, seed=1)
    xte, yte = toy(64, seed=2)
    recipe = Recipe(max_epochs=12, patience=12, batch_size=16, lr=2e-3, seed=0)
    accs = {}
    for name, f in (("original", lambda a: a), ("scrambled", lambda a: _shuffle_blocks(a, 4, seed=3))):
        res = train_classifier(f(xtr), ytr, f(xva), yva, recipe=recipe, model="vit", patch=4, dim=32, depth=2,
                               heads=2, progress=False)
        assert res.config.input_shape == (SIZE, SIZE)
        accs[name] = evaluate(res.model, f(xte), yte, classes=res.classes, n_boot=10)["accuracy"]["value"]
    assert accs["original"] >= 0.9, accs
    assert abs(accs["scrambled"] - accs["original"]) <= 0.05, accs


def test_token_vit_without_positions_ignores_token_order_and_mlp_takes_real_values():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, t, d = 96, 16, 6
    y = ["a" if i % 2 == 0 else "b" for i in range(n)]
    x = rng.normal(0, 1, (n, t, d)).astype(np.float32)
    x[1::2, :8, 0] += 3.0  # class b: half the tokens carry a large first feature
    shuffled = np.stack([xi[rng.permutation(t)] for xi in x])  # per-sample token order, as randenc does
    recipe = Recipe(max_epochs=10, patience=10, batch_size=16, lr=2e-3, seed=0)
    res = train_classifier(shuffled[:64], y[:64], shuffled[64:], y[64:], recipe=recipe, model="vit", tokens=True,
                           position="none", dim=16, depth=1, heads=2, progress=False)
    m = res.model
    with torch.no_grad():  # mean pooling and no position: the logit does not depend on token order
        a = m(m.prepare(x[:8]))
        b = m(m.prepare(np.stack([xi[::-1] for xi in x[:8]])))
    assert torch.allclose(a, b, atol=1e-5)
    assert evaluate(m, x[64:], y[64:], classes=res.classes, n_boot=10)["accuracy"]["value"] >= 0.9
    # real values reach the MLP unclipped: -x is as separable as x, and only clipping would lose it
    res = train_classifier(-x[:64, :, :], y[:64], -x[64:], y[64:], recipe=recipe.with_(max_epochs=25, patience=25),
                           model="mlp", hidden=32, progress=False)
    assert evaluate(res.model, -x[64:], y[64:], classes=res.classes, n_boot=10)["accuracy"]["value"] >= 0.9
    with pytest.raises(MedcloakError, match="CNN families"):
        ClassifierConfig(model="mlp", input_mode="level-embedding", levels=16)
