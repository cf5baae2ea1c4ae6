"""DICOM reading (many transfer syntaxes, MONOCHROME1, multi-frame, colour), writing and de-identification."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    XRayAngiographicImageStorage,
)

from medcloak.errors import MedcloakError
from medcloak.io import (
    UIDMapper,
    deidentify,
    iter_inputs,
    read_dicom_dataset,
    read_frames,
    write_dicom,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SALT = b"medcloak-test-salt-0123456789"


def tf(name: str) -> str:
    """A pydicom test file (bundled with pydicom or pydicom-data); skip when it is not installed."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not installed (pydicom-data)")
    return path


def stack(path) -> np.ndarray:
    return np.stack([f.pixels for f in read_frames(path)])


def deid_data_file(rel: str) -> Path:
    spec = importlib.util.find_spec("deid_data")
    if spec is None or spec.origin is None:
        pytest.skip("deid-data not installed")
    p = Path(spec.origin).parent / "data" / rel
    if not p.is_file():
        pytest.skip(f"{rel} not in deid-data")
    return p


# ------------------------------------------------------------------------------------ reading
# name -> (n_frames, rows, cols, modality)
GOOD = {
    "CT_small.dcm": (1, 128, 128, "CT"),  # explicit VR LE, signed, rescale slope/intercept
    "MR_small.dcm": (1, 64, 64, "MR"),
    "MR_small_implicit.dcm": (1, 64, 64, "MR"),
    "MR_small_bigendian.dcm": (1, 64, 64, "MR"),
    "MR_small_RLE.dcm": (1, 64, 64, "MR"),
    "MR_small_jp2klossless.dcm": (1, 64, 64, "MR"),
    "MR_small_jpeg_ls_lossless.dcm": (1, 64, 64, "MR"),
    "JPEG2000.dcm": (1, 1024, 256, "NM"),
    "JPGExtended.dcm": (1, 1024, 256, "NM"),  # JPEG extended (process 2 & 4), 12-bit
    "JPEGLSNearLossless_08.dcm": (1, 45, 10, "OT"),
    "JPEGLSNearLossless_16.dcm": (1, 50, 10, "OT"),
    "SC_rgb.dcm": (1, 100, 100, "OT"),
    "SC_rgb_jpeg_gdcm.dcm": (1, 100, 100, "OT"),  # JPEG baseline
    "SC_rgb_rle_2frame.dcm": (2, 100, 100, "OT"),
    "SC_rgb_rle_16bit_2frame.dcm": (2, 100, 100, "OT"),
    "SC_ybr_full_422_uncompressed.dcm": (1, 100, 100, "OT"),
    "SC_rgb_jls_lossy_line.dcm": (1, 100, 100, "OT"),
    "examples_palette.dcm": (1, 350, 800, "US"),
    "examples_ybr_color.dcm": (30, 240, 320, "US"),  # multi-frame YBR_FULL_422 cine
    "emri_small.dcm": (10, 64, 64, "MR"),
    "emri_small_RLE.dcm": (10, 64, 64, "MR"),
    "emri_small_jpeg_2k_lossless.dcm": (10, 64, 64, "MR"),
    "emri_small_jpeg_ls_lossless.dcm": (10, 64, 64, "MR"),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": (1, 768, 1024, "US"),  # JPEG lossless SV1 (pydicom-data)
    "JPEG-LL.dcm": (1, 1024, 256, "NM"),  # JPEG lossless (pydicom-data)
    "MR2_J2KR.dcm": (1, 1024, 1024, "MR"),  # JPEG 2000 lossless (pydicom-data)
    "RG3_UNCR.dcm": (1, 1760, 1760, "CR"),  # MONOCHROME1 (pydicom-data)
    "OBXXXX1A_rle_2frame.dcm": (2, 600, 800, "US"),  # palette, RLE, multi-frame (pydicom-data)
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_reads_bundled_files(name):
    path = tf(name)
    n, rows, cols, modality = GOOD[name]
    frames = read_frames(path)
    assert len(frames) == n
    for i, fr in enumerate(frames):
        assert fr.pixels.dtype == np.float32 and fr.pixels.shape == (rows, cols)
        assert 0.0 <= fr.pixels.min() and fr.pixels.max() <= 1.0
        assert fr.meta.frame_index == i and fr.meta.n_frames == n
        assert fr.meta.modality == modality
        assert fr.meta.source == os.fspath(path)
        assert fr.meta.original_shape[:2] == (rows, cols)
    assert np.ptp(frames[0].pixels) > 0  # not a blank decode


@pytest.mark.parametrize(
    "reference, others, atol",
    [
        ("MR_small.dcm", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
                          "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"], 0.0),
        ("emri_small.dcm", ["emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
                            "emri_small_jpeg_ls_lossless.dcm", "emri_small_big_endian.dcm"], 0.0),
        ("SC_rgb.dcm", ["SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_ybr_full_422_uncompressed.dcm"], 0.03),
        ("JPEG2000_UNC.dcm", ["JPEG2000.dcm"], 0.0),  # J2K (pydicom-data reference)
        ("MR2_UNCR.dcm", ["MR2_J2KR.dcm"], 0.0),  # J2K lossless (pydicom-data)
        ("US1_UNCR.dcm", ["US1_J2KR.dcm"], 0.0),  # J2K YBR_RCT colour (pydicom-data)
    ],
)
def test_transfer_syntaxes_decode_to_the_same_image(reference, others, atol):
    ref = stack(tf(reference))
    for other in others:
        got = stack(tf(other))
        assert got.shape == ref.shape
        if atol == 0.0:
            np.testing.assert_array_equal(got, ref, err_msg=other)
        else:  # lossy codecs / YBR subsampling: close on average and pixel-wise
            assert np.abs(got - ref).mean() < atol / 3, other
            assert np.abs(got - ref).max() < 0.25, other


def test_modality_lut_and_bits_stored_scaling():
    ds = pydicom.dcmread(tf("CT_small.dcm"))  # signed 16-bit, slope 1, intercept -1024
    stored = ds.pixel_array.astype(np.float64)
    lo, hi = -(2**15), 2**15 - 1
    expect = (stored - lo) / (hi - lo)  # positive-slope linear rescale == stored-range scaling
    np.testing.assert_allclose(read_frames(tf("CT_small.dcm"))[0].pixels, expect, atol=1e-6)


def _native_copy(tmp_path, name, **changes) -> Path:
    ds = pydicom.dcmread(tf(name))
    for k, v in changes.items():
        setattr(ds, k, v)
    out = tmp_path / f"{name}.mod.dcm"
    ds.save_as(out)
    return out


def test_monochrome1_is_inverted(tmp_path):
    plain = stack(tf("MR_small.dcm"))
    inverted = stack(_native_copy(tmp_path, "MR_small.dcm", PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)


def test_monochrome1_bundled_cr():
    ds = pydicom.dcmread(tf("RG3_UNCR.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    stored = ds.pixel_array.astype(np.float64)
    expect = 1.0 - np.clip(stored / (2 ** int(ds.BitsStored) - 1), 0, 1)  # no rescale in this file
    np.testing.assert_allclose(read_frames(tf("RG3_UNCR.dcm"))[0].pixels, expect, atol=1e-6)


def test_bits_stored_12_scales_to_full_range(tmp_path):
    ds = pydicom.dcmread(tf("MR_small.dcm"))
    arr = np.zeros((64, 64), dtype=np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2] = 4095, 2048, 1
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    for kw in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if kw in ds:
            del ds[kw]
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "b12.dcm")
    px = read_frames(tmp_path / "b12.dcm")[0].pixels
    assert px[0, 0] == pytest.approx(1.0) and px[0, 1] == pytest.approx(2048 / 4095)
    assert px[0, 2] == pytest.approx(1 / 4095) and px[1, 1] == 0.0


def test_colour_becomes_bt601_luminance(tmp_path):
    ds = pydicom.dcmread(tf("SC_rgb.dcm"))
    rgb = ds.pixel_array.astype(np.float64) / 255.0
    expect = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(read_frames(tf("SC_rgb.dcm"))[0].pixels, expect, atol=1e-5)


def test_deid_data_files_read():
    for rel, n in [("humans/ctbrain1.dcm", 1), ("ultrasounds/GREYSCALE_IMAGE.dcm", 1)]:
        frames = read_frames(deid_data_file(rel))
        assert len(frames) == n and 0 <= frames[0].pixels.min() <= frames[0].pixels.max() <= 1


# ----------------------------------------------------------------------------------- failures
BAD = [
    "MR_truncated.dcm",  # pixel data shorter than Rows*Columns
    "rtplan_truncated.dcm",
    "meta_missing_tsyntax.dcm",  # no transfer syntax, no BitsAllocated
    "badVR.dcm",
    "nested_priv_SQ.dcm",
    "no_meta.dcm",
    "no_meta_group_length.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "UN_sequence.dcm",
    "JPEG-lossy.dcm",  # a JPEG stream no installed decoder accepts
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "rtplan.dcm",  # no pixel data
    "test-SR.dcm",
    "waveform_ecg.dcm",
    "zipMR.gz",
    "crayons.icc",
    "emri_small_jpeg_2k_lossless_too_short.dcm",  # pydicom-data
    "bad_sequence.dcm",  # pydicom-data: readable after all? see test below
]


@pytest.mark.parametrize("name", [n for n in BAD if n != "bad_sequence.dcm"])
def test_malformed_or_non_image_files_raise_medcloak_error(name):
    path = tf(name)
    with pytest.raises(MedcloakError) as info:
        read_frames(path)
    assert Path(path).name in str(info.value) and "\n" not in str(info.value)


def test_bad_sequence_reads_or_fails_cleanly():
    try:
        frames = read_frames(tf("bad_sequence.dcm"))
    except MedcloakError:
        return
    assert frames and frames[0].pixels.dtype == np.float32


@pytest.mark.parametrize("cut", [1, 100, 131, 132, 200, 400, 1000, -2000, -140])  # file ends: pixels + 126 B padding
def test_truncated_copies_raise_medcloak_error(tmp_path, cut):
    data = Path(tf("MR_small.dcm")).read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[:cut])
    with pytest.raises(MedcloakError, match="cut.dcm"):
        read_frames(p)


def test_garbage_after_dicm_marker(tmp_path):
    p = tmp_path / "garbage"
    p.write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(3000))
    with pytest.raises(MedcloakError, match="garbage"):
        read_frames(p)


def test_undecodable_transfer_syntax_is_named(tmp_path):
    ds = pydicom.dcmread(tf("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder installed
    p = tmp_path / "mpeg.dcm"
    ds.save_as(p)
    with pytest.raises(MedcloakError) as info:
        read_frames(p)
    assert "mpeg.dcm" in str(info.value) and "1.2.840.10008.1.2.4.100" in str(info.value)


def test_reading_does_not_touch_the_file(tmp_path):
    p = tmp_path / "x.dcm"
    p.write_bytes(Path(tf("emri_small_RLE.dcm")).read_bytes())
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = (p.read_bytes(), p.stat().st_mtime_ns)
    read_frames(p)
    read_dicom_dataset(p)
    assert (p.read_bytes(), p.stat().st_mtime_ns) == before


def test_iter_inputs_finds_dicom_without_extension(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "IM0001").write_bytes(Path(tf("MR_small.dcm")).read_bytes())
    (tmp_path / "a" / "notes").write_text("hello")
    (tmp_path / "DICOMDIR").write_bytes(Path(tf("MR_small.dcm")).read_bytes())
    assert [p.relative_to(tmp_path).as_posix() for p in iter_inputs(tmp_path)] == ["a/IM0001"]


# ------------------------------------------------------------------------------------ writing
@pytest.fixture
def cine() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.random((4, 24, 20)).astype(np.float32)
    x[0, 0, 0], x[0, 0, 1] = 0.0, 1.0
    return x


@pytest.mark.parametrize(
    "n, modality, sop",
    [
        (1, None, SecondaryCaptureImageStorage),
        (4, None, MultiFrameGrayscaleWordSecondaryCaptureImageStorage),
        (4, "XA", XRayAngiographicImageStorage),
        (1, "XA", XRayAngiographicImageStorage),
    ],
)
def test_write_read_round_trip(tmp_path, cine, n, modality, sop):
    frames = cine[:n] if n > 1 else cine[0]
    p = tmp_path / "out.dcm"
    write_dicom(p, frames, uid_mapper=UIDMapper(SALT), modality=modality, description="obfuscated")
    back = read_frames(p)
    assert len(back) == n
    got = np.stack([f.pixels for f in back])
    assert np.abs(got - cine[:n]).max() <= 0.5 / 65535 + 1e-7
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == sop and ds.file_meta.MediaStorageSOPClassUID == sop
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 16
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert back[0].meta.modality == (modality or "OT")
    if n > 1:
        assert int(ds.NumberOfFrames) == n and ds.FrameIncrementPointer == 0x00181063
        assert float(ds.FrameTime) > 0


def test_write_is_deterministic_and_dateless(tmp_path, cine):
    a, b, c = tmp_path / "a.dcm", tmp_path / "b.dcm", tmp_path / "c.dcm"
    write_dicom(a, cine, uid_mapper=UIDMapper(SALT), modality="XA")
    write_dicom(b, cine, uid_mapper=UIDMapper(SALT), modality="XA")
    write_dicom(c, cine, uid_mapper=UIDMapper(b"another-salt-0123456789"), modality="XA")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    ds = pydicom.dcmread(a)
    for elem in ds.iterall():
        if elem.VR in ("DA", "DT", "TM"):
            assert not elem.value, elem


def test_write_from_xa_source_keeps_geometry_not_identity(tmp_path, cine):
    src = pydicom.dcmread(tf("CT_small.dcm"), stop_before_pixels=True)
    src.Modality = "XA"
    src.PatientName, src.PatientID, src.InstitutionName = "Doe^Jane", "P-123", "Heart Hospital"
    src.ImagerPixelSpacing = [0.2, 0.2]
    src.PositionerPrimaryAngle, src.FrameTime = "30", "33.3"
    mapper = UIDMapper(SALT)
    p = tmp_path / "x.dcm"
    write_dicom(p, cine, source=src, uid_mapper=mapper, description="obf")
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == XRayAngiographicImageStorage
    assert ds.StudyInstanceUID == mapper.map(src.StudyInstanceUID) != src.StudyInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert float(ds.PositionerPrimaryAngle) == 30 and float(ds.FrameTime) == pytest.approx(33.3)
    # resized 128x128 -> 24x20: spacing scaled accordingly
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
        [float(src.PixelSpacing[0]) * 128 / 24, float(src.PixelSpacing[1]) * 128 / 20], rel=1e-6)
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([0.2 * 128 / 24, 0.2 * 128 / 20])
    text = p.read_bytes()
    for secret in (b"Doe", b"P-123", b"Heart Hospital", str(src.StudyInstanceUID).encode()):
        assert secret not in text
    assert ds.PatientIdentityRemoved == "YES"
    assert src.PatientName == "Doe^Jane"  # the caller's header is not modified


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(MedcloakError):
        write_dicom(tmp_path / "x.dcm", np.zeros((2, 2, 2, 2)), uid_mapper=UIDMapper(SALT))
    with pytest.raises(MedcloakError):
        write_dicom(tmp_path / "x.dcm", np.full((4, 4), np.nan), uid_mapper=UIDMapper(SALT))
    assert not (tmp_path / "x.dcm").exists()


# ------------------------------------------------------------------------------ de-identification
IDENTIFYING = ["PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "InstitutionAddress",
               "ReferringPhysicianName", "AccessionNumber", "StudyDate", "StudyTime", "StationName",
               "OperatorsName", "PerformingPhysicianName", "OtherPatientIDs", "PatientAddress",
               "StudyID", "DeviceSerialNumber", "PatientAge", "SeriesDate", "AcquisitionDate"]


def _loaded_header(sop: str, study="1.2.3.4.5.6", series="1.2.3.4.5.7") -> pydicom.Dataset:
    ds = pydicom.dcmread(tf("CT_small.dcm"), stop_before_pixels=True)
    values = {
        "PatientName": "Doe^Jane", "PatientID": "P-123", "PatientBirthDate": "19500101",
        "InstitutionName": "Heart Hospital", "InstitutionAddress": "1 Main St",
        "ReferringPhysicianName": "Who^Doctor", "AccessionNumber": "ACC99", "StudyDate": "20200101",
        "StudyTime": "101010", "StationName": "CATHLAB1", "OperatorsName": "Op^Erator",
        "PerformingPhysicianName": "Per^Former", "OtherPatientIDs": "OTHER1",
        "PatientAddress": "2 Side St", "StudyID": "S77", "DeviceSerialNumber": "SN123",
        "PatientAge": "070Y", "SeriesDate": "20200101", "AcquisitionDate": "20200101",
    }
    for k, v in values.items():
        setattr(ds, k, v)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.99"
    ds.ReferencedImageSequence = [ref]
    ds.add_new(0x00291010, "LO", "private secret")
    return ds


def test_deidentify_removes_basic_profile_identifiers():
    ds = _loaded_header("1.2.3.4.5.8")
    original = copy.deepcopy(ds)
    out = deidentify(ds, uid_mapper=UIDMapper(SALT))
    assert ds == original  # input untouched
    secrets = {"Doe", "P-123", "1950", "Heart", "Main St", "Who^Doctor", "ACC99", "2020", "101010",
               "CATHLAB1", "Op^Erator", "Per^Former", "OTHER1", "Side St", "S77", "SN123", "070Y"}
    for kw in IDENTIFYING:
        value = str(out.get(kw, "") or "")
        assert not any(s in value for s in secrets), (kw, value)
    dumped = str(out)
    assert not any(s in dumped for s in secrets)
    assert out.PatientIdentityRemoved == "YES" and out.DeidentificationMethod
    assert not any(e.tag.is_private for e in out.iterall())
    assert out.SOPClassUID == ds.SOPClassUID  # registry UIDs are kept
    for elem in out.iterall():  # nested instance UIDs are mapped too
        assert elem.value != "1.2.3.4.5.99"


def test_deidentify_uids_consistent_within_study():
    a = _loaded_header("1.2.3.4.5.8")
    b = _loaded_header("1.2.3.4.5.9")
    mapper = UIDMapper(SALT)
    da, db = deidentify(a, uid_mapper=mapper), deidentify(b, uid_mapper=UIDMapper(SALT))
    assert da.StudyInstanceUID == db.StudyInstanceUID != a.StudyInstanceUID
    assert da.SeriesInstanceUID == db.SeriesInstanceUID != a.SeriesInstanceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID
    assert da.SOPInstanceUID != a.SOPInstanceUID and da.file_meta.MediaStorageSOPInstanceUID == da.SOPInstanceUID
    for d in (da, db):
        for uid in (d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID):
            assert pydicom.uid.UID(uid).is_valid
    other = deidentify(a, uid_mapper=UIDMapper(b"a-different-owner-salt"))
    assert other.StudyInstanceUID != da.StudyInstanceUID


def test_deidentify_bundled_and_deid_data_headers():
    files = [tf("MR_small.dcm"), tf("JPEG2000.dcm"), deid_data_file("humans/ctbrain1.dcm")]
    for f in files:
        ds = read_dicom_dataset(f)
        out = deidentify(ds, uid_mapper=UIDMapper(SALT))
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "ReferringPhysicianName"):
            orig = str(ds.get(kw, "") or "")
            if orig and orig not in ("ANONYMIZED",):
                assert str(out.get(kw, "") or "") != orig, (f, kw)
        assert out.StudyInstanceUID != ds.StudyInstanceUID


def test_uid_mapper_rejects_short_salt():
    with pytest.raises(MedcloakError):
        UIDMapper(b"short")


@pytest.mark.filterwarnings("error")
def test_deidentified_header_and_written_file_are_valid_vrs(tmp_path):
    src = read_dicom_dataset(tf("CT_small.dcm"))
    out = deidentify(src, uid_mapper=UIDMapper(SALT))
    out.save_as(tmp_path / "h.dcm")  # a value too long for its VR would warn -> error here
    write_dicom(tmp_path / "w.dcm", np.zeros((2, 8, 8)), source=src, uid_mapper=UIDMapper(SALT))
    assert pydicom.dcmread(tmp_path / "w.dcm").PatientIdentityRemoved == "YES"
