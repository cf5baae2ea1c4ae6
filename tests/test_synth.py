"""medcloak.synth: semi-synthetic coronary angiography frames, masks, datasets and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medcloak.errors import MedcloakError
from medcloak.io.dataset import read_manifest
from medcloak.io.frameset import FrameSet
from medcloak.synth import generate, make_grid, write_synth
from medcloak.synth import background as bgmod
from medcloak.synth.centerlines import build_tree, sample_tree
from medcloak.synth.render import splat_tubes


@pytest.fixture(scope="module")
def small() -> FrameSet:
    return generate(12, size=48, seed=7, frames_per_patient=3)


def test_shapes_dtypes_and_range(small):
    d = small
    assert d.frames.shape == d.clean.shape == d.masks.shape == (12, 48, 48)
    assert d.frames.dtype == d.clean.dtype == np.float32 and d.masks.dtype == bool
    for a in (d.frames, d.clean):
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
        assert a.std() > 0.05  # not a constant image
    assert d.stenosis.dtype == bool and d.stenosis.shape == (12,)
    assert d.frame_index.dtype.kind == "i" and len(d.labels) == len(d.patient_ids) == len(d.views) == 12
    assert 0.005 < d.masks.mean() < 0.3


def test_deterministic_for_a_seed(small):
    again = generate(12, size=48, seed=7, frames_per_patient=3)
    for name in ("frames", "clean", "masks", "stenosis", "frame_index"):
        np.testing.assert_array_equal(getattr(small, name), getattr(again, name))
    assert (small.labels, small.patient_ids, small.views) == (again.labels, again.patient_ids, again.views)


def test_different_seeds_differ(small):
    other = generate(12, size=48, seed=8, frames_per_patient=3)
    assert not np.array_equal(small.masks, other.masks)
    assert np.abs(small.clean - other.clean).mean() > 0.02


@pytest.mark.parametrize("n,fpp", [(12, 3), (10, 4), (7, 2)])
def test_label_balance_and_one_label_per_patient(n, fpp):
    d = generate(n, size=16, seed=1, frames_per_patient=fpp, backgrounds="synthetic")
    assert d.labels.count("LCA") == n - n // 2 and d.labels.count("RCA") == n // 2
    per_patient = {}
    for pid, lab, k in zip(d.patient_ids, d.labels, d.frame_index):
        per_patient.setdefault(pid, []).append((lab, int(k)))
    for rows in per_patient.values():
        assert len({lab for lab, _ in rows}) == 1 and len(rows) <= fpp
        assert [k for _, k in rows] == list(range(len(rows)))


def test_mask_is_aligned_with_dark_vessels(small):
    """Mask pixels are darker than their neighbourhood in the clean frame; a shifted mask is not."""
    for i in range(len(small)):
        m, c = small.masks[i], small.clean[i]
        ring = ndimage.binary_dilation(m, iterations=3) & ~m
        contrast = c[ring].mean() - c[m].mean()
        assert contrast > 0.04, (i, contrast)
        shifted = np.roll(m, (9, 9), axis=(0, 1))
        ring_s = ndimage.binary_dilation(shifted, iterations=3) & ~shifted
        assert c[ring_s].mean() - c[shifted].mean() < contrast / 2


def test_patient_frames_move_but_stay_similar(small):
    d = small
    pids = sorted(set(d.patient_ids))
    assert len(pids) == 4
    within, across = [], []
    for p in pids:
        idx = [i for i, q in enumerate(d.patient_ids) if q == p]
        assert len(idx) == 3
        a, b = d.clean[idx[0]], d.clean[idx[1]]
        assert not np.array_equal(d.masks[idx[0]], d.masks[idx[1]])  # cardiac motion
        assert np.abs(a - b).max() > 0.05
        within.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    firsts = [d.patient_ids.index(p) for p in pids]
    for j in range(len(firsts) - 1):
        across.append(np.corrcoef(d.clean[firsts[j]].ravel(), d.clean[firsts[j + 1]].ravel())[0, 1])
    assert min(within) > 0.8 and min(within) > max(across)


def test_noise_is_zero_mean_around_clean(small):
    diff = small.frames.astype(np.float64) - small.clean
    assert abs(diff.mean()) < 0.01 and 0.002 < diff.std() < 0.1


def test_stenosis_narrows_a_major_vessel():
    tree = build_tree("LCA", np.random.default_rng(0), stenosis=True)
    s = tree.stenosis
    assert s is not None and 0.5 <= s.severity <= 0.9
    v = next(v for v in tree.vessels if v.name == s.vessel)
    assert v.major
    ratio = v.radii.min() / np.median(v.radii)
    assert ratio < 0.6
    assert build_tree("RCA", np.random.default_rng(0), stenosis=False).stenosis is None


def test_splat_gives_chord_length_and_conserves_mass():
    """A straight tube across the image: ray path length 2 r at the axis; mass pi r^2 L."""
    H = W = 40
    r_px, step = 4.0, 0.25
    xs = np.arange(-10.0, 50.0, step)
    uv = np.stack([xs, np.full_like(xs, 20.0)], axis=1)
    rho = np.full(len(xs), r_px)
    w = np.pi * r_px**2 * step * np.ones(len(xs))  # mag = 1 px/mm
    length, inside = splat_tubes(uv, rho, w, np.zeros(len(xs), int), shape=(H, W), n_groups=1)
    centre = length[0, 20, 5:35].mean()
    assert abs(centre - 2 * r_px) < 0.1 * 2 * r_px
    assert abs(length[0, :, 5:35].sum() / 30 - np.pi * r_px**2) < 0.02 * np.pi * r_px**2
    assert inside[0, 20, 20] and not inside[0, 20 + 6, 20]
    # a sub-pixel tube keeps its mass and a one-pixel-wide lumen
    rho_t = np.full(len(xs), 0.2)
    length_t, inside_t = splat_tubes(uv, rho_t, np.pi * 0.2**2 * step * np.ones(len(xs)), np.zeros(len(xs), int),
                                     shape=(H, W), n_groups=1)
    assert abs(length_t[0, :, 5:35].sum() / 30 - np.pi * 0.04) < 0.02 * np.pi * 0.04
    assert inside_t[0, :, 20].sum() == 1


def test_sample_tree_marks_catheter():
    tree = build_tree("RCA", np.random.default_rng(2), stenosis=False)
    pts, rad, ds, cat = sample_tree(tree, step_mm=0.5)
    assert pts.shape == (len(rad), 3) and cat.any() and not cat.all()
    assert np.all(ds > 0) and np.all(ds <= 0.5 + 1e-9) and np.all(rad > 0)


def test_synthetic_fallback_without_data_packages(monkeypatch):
    monkeypatch.setattr(bgmod, "_load", lambda spec: None)
    d = generate(4, size=24, seed=0, frames_per_patient=2)  # "auto" falls back
    assert d.frames.shape == (4, 24, 24)
    with pytest.raises(MedcloakError, match="pydicom-data"):
        generate(2, size=24, seed=0, backgrounds="real")


def test_bad_arguments_raise():
    for kw in ({"n": 1}, {"n": 4, "size": 8}, {"n": 4, "frames_per_patient": 0}, {"n": 4, "seed": -1},
               {"n": 4, "backgrounds": "xray"}):
        with pytest.raises(MedcloakError):
            generate(**kw)


def test_write_synth_manifest_patient_wise(tmp_path):
    d = generate(24, size=16, seed=3, frames_per_patient=2, backgrounds="synthetic")
    man = write_synth(tmp_path / "ds", d, seed=0, progress=False)
    back = read_manifest(tmp_path / "ds")
    assert [r.path for r in back.records] == [r.path for r in man.records]
    assert len(back.records) == 24 and set(back.labels) == {"LCA", "RCA"}
    split_of = {}
    for r in back.records:
        assert split_of.setdefault(r.patient_id, r.split) == r.split
        for col in ("mask", "catheter_mask", "clean", "stenosis", "view", "frame"):
            assert r.extra[col] != ""
        assert back.abspath(r.path).is_file() and back.abspath(r.extra["mask"]).is_file()
        assert back.abspath(r.extra["clean"]).is_file()
    assert set(split_of.values()) == {"train", "val", "test"}
    from PIL import Image

    m0 = np.asarray(Image.open(back.abspath(back.records[0].extra["mask"]))) > 127
    np.testing.assert_array_equal(m0, d.masks[0])
    i = int(np.argmax(d.catheter.sum(axis=(1, 2))))
    rec = next(r for r in back.records if r.path == man.records[i].path)
    c0 = np.asarray(Image.open(back.abspath(rec.extra["catheter_mask"]))) > 127
    assert c0.any()
    np.testing.assert_array_equal(c0, d.catheter[i])
    with pytest.raises(MedcloakError, match="already holds"):
        write_synth(tmp_path / "ds", d, seed=0, progress=False, overwrite=False)


def test_write_synth_dicom(tmp_path):
    dicom = pytest.importorskip("medcloak.io.dicom")
    d = generate(4, size=16, seed=0, frames_per_patient=2, backgrounds="synthetic")
    write_synth(tmp_path, d, seed=0, dicom=True, progress=False)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    assert [f.stem for f in files] == sorted(set(d.patient_ids))
    frames = dicom.read_dicom(files[0])
    assert len(frames) == 2 and frames[0].meta.modality == "XA"
    np.testing.assert_allclose(frames[1].pixels, d.frames[1], atol=1e-4)


def test_grid_from_data_and_dir(tmp_path):
    d = generate(8, size=16, seed=0, frames_per_patient=2, backgrounds="synthetic")
    a = make_grid(d, tmp_path / "a.png")
    write_synth(tmp_path / "ds", d, seed=0, progress=False)
    b = make_grid(tmp_path / "ds", tmp_path / "b.png")
    from PIL import Image

    for p in (a, b):
        w, h = Image.open(p).size
        assert w > h > 100
    with pytest.raises(MedcloakError):
        make_grid(d, tmp_path / "c.png", n_per_class=1)


def test_cli_refuses_existing_dataset(tmp_path, capsys):
    from medcloak.cli import main

    out = tmp_path / "ds"
    assert main(["synth", str(out), "--n", "4", "--size", "16", "--frames-per-patient", "2"]) == 0
    assert "4 frames, 2 patients, LCA 2 / RCA 2" in capsys.readouterr().out
    before = (out / "labels.csv").read_bytes()
    assert main(["synth", str(out), "--n", "6", "--size", "16"]) == 2
    assert "labels.csv" in capsys.readouterr().err and (out / "labels.csv").read_bytes() == before
    assert main(["synth", str(out), "--n", "6", "--size", "16", "--force"]) == 0
    assert len(read_manifest(out).records) == 6
    assert main(["synth", str(tmp_path / "x"), "--n", "1"]) == 2
    assert main(["synth", str(tmp_path / "y"), "--size", "8"]) == 2
    assert "size" in capsys.readouterr().err
    assert main(["grid", str(out), "--out", str(tmp_path / "g.png")]) == 0 and (tmp_path / "g.png").is_file()


def test_visible_mask_catheter_and_full_mask(small):
    d = small
    assert d.masks_full.shape == d.catheter.shape == d.masks.shape
    assert d.masks_full.dtype == d.catheter.dtype == bool
    assert not (d.masks & ~d.masks_full).any()  # visible lumen is part of the lumen
    assert d.catheter.any(axis=(1, 2)).mean() > 0.5
    # the catheter is a dark tube in the clean frame, like the vessels
    for i in range(len(d)):
        c = d.catheter[i] & ~d.masks_full[i]
        if c.sum() < 10:
            continue
        ring = ndimage.binary_dilation(c, iterations=3) & ~c & ~d.masks_full[i]
        assert d.clean[i][ring].mean() - d.clean[i][c].mean() > 0.01, i


def test_visible_contrast_threshold_only_changes_the_mask():
    kw = dict(size=32, seed=4, frames_per_patient=2)
    base = generate(4, **kw)
    none = generate(4, visible_contrast=0.0, **kw)
    strict = generate(4, visible_contrast=0.15, **kw)
    np.testing.assert_array_equal(none.masks, none.masks_full)
    for other in (none, strict):  # the threshold draws nothing: frames and lumen are the same
        np.testing.assert_array_equal(other.frames, base.frames)
        np.testing.assert_array_equal(other.masks_full, base.masks_full)
    assert strict.masks.sum() < base.masks.sum() <= none.masks.sum()
    # what the strict threshold drops is fainter in the clean frame than what it keeps
    dropped, kept = base.masks & ~strict.masks, strict.masks
    assert dropped.any() and kept.any()
    assert base.clean[dropped].mean() > base.clean[kept].mean()
    for bad in (-0.1, 1.0, "0.1", True):
        with pytest.raises(MedcloakError, match="visible_contrast"):
            generate(4, visible_contrast=bad, **kw)


def test_background_dir_override(tmp_path, monkeypatch):
    """$MEDCLOAK_BACKGROUND_DIR is looked in first; a folder without the file changes nothing."""
    from medcloak.synth import background

    spec = "pydicom-data:RG1_UNCR.dcm"
    monkeypatch.setenv("MEDCLOAK_BACKGROUND_DIR", str(tmp_path))
    default = background._locate(spec)
    assert default is None or default.parent != tmp_path
    (tmp_path / "RG1_UNCR.dcm").write_bytes(b"x")
    assert background._locate(spec) == tmp_path / "RG1_UNCR.dcm"
