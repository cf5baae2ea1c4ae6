"""DICOM files <-> float32 frames in [0, 1] (pydicom; compressed syntaxes through pylibjpeg).

Reading (:func:`read_dicom`)
----------------------------
1. Pixel data is decoded by pydicom. JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and RLE
   go through the pylibjpeg plugins (``pylibjpeg-libjpeg``, ``-openjpeg``, ``-rle``). YBR colour
   is converted to RGB by pydicom.
2. Grey images: the **modality LUT** (Rescale Slope/Intercept or a Modality LUT Sequence) is
   applied with :func:`pydicom.pixels.apply_modality_lut`. The result is scaled to [0, 1] by
   the **output range of the modality LUT over every value BitsStored can hold** (unsigned
   ``0 .. 2**BitsStored - 1``, signed ``-2**(BitsStored-1) .. 2**(BitsStored-1) - 1``). For a
   plain linear rescale with positive slope this equals ``stored / (2**BitsStored - 1)``; it
   does not depend on the image content, so every file of one acquisition type is scaled alike.
   Values outside the range (stray high bits) are clipped. The VOI LUT / windowing is **not**
   applied: the full stored dynamic range is kept.
3. ``MONOCHROME1`` (low = white) is inverted (``1 - x``) so that high always means bright.
4. Colour (RGB, YBR_*, PALETTE COLOR) becomes ITU-R BT.601 luminance, each channel scaled by
   ``2**BitsStored - 1`` (palette: by the bit depth of the LUT entries).
5. Float Pixel Data is min-max scaled per frame.
6. Multi-frame files (XA/XRF cines, US clips, enhanced objects) give one :class:`Frame` each.

Any failure -- not DICOM, truncated, no pixel data, no decoder for the transfer syntax, a
decoder error -- raises one :class:`~medcloak.errors.MedcloakError` naming the file (and the
transfer syntax when decoding failed). Files are opened read-only.

Writing (:func:`write_dicom`)
-----------------------------
Frames in [0, 1] are stored as **16-bit unsigned, BitsStored 16**, ``MONOCHROME2``, explicit VR
little endian, uncompressed (``round(x * 65535)``, so a round trip is exact to 1/65535). SOP
class: X-Ray Angiographic Image when the modality is XA (asked, or the source's), otherwise
Secondary Capture Image (one frame) or Multi-frame Grayscale Word Secondary Capture (several).
With a ``source`` header, only a fixed list of geometry/acquisition attributes
(:data:`CARRIED_ATTRIBUTES`) is taken from its **de-identified** copy; spacing attributes are
rescaled if the frames were resized. No identifying attribute, no date and no time is written;
all UIDs come from the :class:`~medcloak.io.deid.UIDMapper` (same input, same bytes).
"""

from __future__ import annotations

import hashlib
import io as _io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    XRayAngiographicImageStorage,
)

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes
from medcloak.io.deid import UIDMapper, deidentify
from medcloak.io.frames import Frame, FrameMeta
from medcloak.io.images import rgb_to_luminance, to_uint
from medcloak.io.limits import Limits, check_pixels

__all__ = [
    "read_dicom",
    "read_dicom_dataset",
    "write_dicom",
    "CARRIED_ATTRIBUTES",
    "DEFAULT_FRAME_TIME_MS",
]

#: Attributes copied from the de-identified source header into written files (when present).
CARRIED_ATTRIBUTES = (
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PixelAspectRatio",
    "PixelSpacingCalibrationType",
    "EstimatedRadiographicMagnificationFactor",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "PositionerMotion",
    "PositionerPrimaryAngle",
    "PositionerSecondaryAngle",
    "FieldOfViewShape",
    "FieldOfViewDimensions",
    "IntensifierSize",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "Exposure",
    "RadiationSetting",
    "FrameTime",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "BodyPartExamined",
    "ViewPosition",
    "ImageLaterality",
    "PatientOrientation",
    "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
    "BurnedInAnnotation",
)
_SPACING = ("PixelSpacing", "ImagerPixelSpacing")
#: Frame time written for multi-frame output when neither the caller nor the source gives one (15 fps).
DEFAULT_FRAME_TIME_MS = 1000.0 / 15.0
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# --------------------------------------------------------------------------------------- reading
def _dcmread(path, *, stop_before_pixels: bool, force: bool) -> Dataset:
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise MedcloakError("empty file", path)
        with open(p, "rb") as fh:
            return pydicom.dcmread(fh, stop_before_pixels=stop_before_pixels, force=force)
    except MedcloakError:
        raise
    except InvalidDicomError as exc:
        raise MedcloakError(f"not a DICOM file ({exc})", path) from None
    except Exception as exc:  # truncated / malformed headers surface as many exception types
        raise MedcloakError(f"cannot parse DICOM header ({exc.__class__.__name__}: {exc})", path) from None


def read_dicom_dataset(path: str | os.PathLike, *, force: bool = False) -> Dataset:
    """Read a DICOM header only (``stop_before_pixels=True``), e.g. as ``source`` of :func:`write_dicom`.

    Parameters
    ----------
    path : path-like
        The file (opened read-only).
    force : bool
        Also accept files without the 128-byte preamble and ``DICM`` marker.
    """
    ds = _dcmread(path, stop_before_pixels=True, force=force)
    if len(ds) == 0:
        raise MedcloakError("no DICOM data elements found", path)
    return ds


def _transfer_syntax(ds: Dataset) -> str:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        return "unknown transfer syntax (missing from file meta)"
    uid = UID(ts)
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _fill_missing_transfer_syntax(ds: Dataset) -> None:
    """Files without file meta (or without its TransferSyntaxUID): use the encoding pydicom read.

    Only for native (not encapsulated) pixel data; acts on the in-memory dataset, never the file.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    try:
        implicit, little = ds.original_encoding
    except Exception:
        return
    if implicit is None or little is None:
        return
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                              ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _check_native_length(ds: Dataset, path, ts: str) -> None:
    """Reject native (uncompressed) pixel data shorter than Rows x Columns x frames says.

    pydicom pads some short buffers with a warning; a missing byte is a truncated file to us.
    """
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None)
    if uid is None or UID(uid).is_compressed or "PixelData" not in ds:
        return
    from pydicom.pixels.utils import get_expected_length

    try:
        expected = int(get_expected_length(ds, unit="bytes"))
        actual = len(ds.PixelData)
    except Exception:
        return  # missing attributes: the decoder reports them
    if actual < expected:
        raise MedcloakError(f"pixel data truncated ({actual} of {expected} bytes), transfer syntax {ts}", path)


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _modality_range(ds: Dataset) -> tuple[float, float]:
    from pydicom.pixels import apply_modality_lut

    lo, hi = _stored_range(ds)
    if hi - lo <= (1 << 16):
        probe = np.arange(lo, hi + 1, dtype=np.int64)
    else:
        probe = np.array([lo, hi], dtype=np.int64)
    out = np.asarray(apply_modality_lut(probe, ds), dtype=np.float64)
    return float(out.min()), float(out.max())


def _grey_to_unit(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """(N, H, W) stored values -> float32 [0, 1], modality LUT applied, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut

    if np.issubdtype(arr.dtype, np.floating):  # Float / Double Float Pixel Data
        a = arr.astype(np.float64)
        lo = a.min(axis=(1, 2), keepdims=True)
        span = a.max(axis=(1, 2), keepdims=True) - lo
        out = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), 0.0)
    else:
        vals = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        lo, hi = _modality_range(ds)
        out = (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)
    out = np.clip(out, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)


def _colour_to_unit(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """(N, H, W, 3) RGB stored values -> float32 luminance in [0, 1]."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    unit = np.clip(arr.astype(np.float64) / float((1 << bits) - 1), 0.0, 1.0)
    return rgb_to_luminance(unit.astype(np.float32))


def read_dicom(path: str | os.PathLike, *, force: bool = False, limits: Limits | None = None) -> list[Frame]:
    """Read every frame of a DICOM image file as float32 (H, W) in [0, 1].

    Parameters
    ----------
    path : path-like
        The file (opened read-only, never modified).
    force : bool
        Also accept files without the preamble/``DICM`` marker (raw data sets).
    limits : Limits, optional
        Rows x Columns x NumberOfFrames from the header is checked before decoding
        (:mod:`medcloak.io.limits`).

    Returns
    -------
    list of Frame
        One per frame; ``meta.modality`` is the DICOM Modality, ``meta.bit_depth`` BitsStored,
        ``meta.patient_id``/``meta.study_id`` are PatientID and StudyInstanceUID (in memory
        only), ``meta.extra`` holds the transfer syntax, photometric interpretation and any
        pydicom warnings.

    Raises
    ------
    MedcloakError
        For anything that cannot be read or decoded (see the module docstring).
    """
    ds = _dcmread(path, stop_before_pixels=False, force=force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        sop = ds.get("SOPClassUID")
        what = f" ({UID(sop).name})" if sop else ""
        raise MedcloakError(f"DICOM file has no pixel data{what}", path)
    try:
        declared = (int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    except (TypeError, ValueError):
        declared = None  # the decoder reports a malformed header
    if declared is not None:
        check_pixels(*declared, path, limits)
    _fill_missing_transfer_syntax(ds)
    ts = _transfer_syntax(ds)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    _check_native_length(ds, path, ts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            arr = np.asarray(ds.pixel_array)
            rows, cols = int(ds.Rows), int(ds.Columns)
            spp = int(ds.get("SamplesPerPixel", 1) or 1)
            n = int(ds.get("NumberOfFrames", 1) or 1)
            if photometric == "PALETTE COLOR":
                from pydicom.pixels import apply_color_lut

                rgb = np.asarray(apply_color_lut(arr, ds))
                lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
                arr = rgb
                spp = 3
                ds_bits = lut_bits
            else:
                ds_bits = None
            stack = arr.reshape((n, rows, cols) + ((spp,) if spp > 1 else ()))
            if spp == 1:
                pixels = _grey_to_unit(stack, ds)
            elif spp == 3:
                if ds_bits is not None:
                    unit = np.clip(stack.astype(np.float64) / float((1 << ds_bits) - 1), 0, 1)
                    pixels = rgb_to_luminance(unit.astype(np.float32))
                else:
                    pixels = _colour_to_unit(stack, ds)
            else:
                raise ValueError(f"unsupported SamplesPerPixel {spp}")
        except MedcloakError:
            raise
        except Exception as exc:  # decoders raise many types; the user needs the file and syntax
            msg = " ".join(str(exc).split())[:300]
            raise MedcloakError(f"cannot decode pixel data, transfer syntax {ts}: "
                                f"{exc.__class__.__name__}: {msg}", path) from None
    warn_msgs = tuple(dict.fromkeys(" ".join(str(w.message).split())[:200] for w in caught))[:5]
    modality = str(ds.get("Modality", "") or "OT").strip() or "OT"
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0)
    pid = str(ds.get("PatientID", "") or "").strip() or None
    sid = str(ds.get("StudyInstanceUID", "") or "").strip() or None
    original_shape = (rows, cols) + ((spp,) if spp > 1 else ())
    extra = {"format": "DICOM", "transfer_syntax": ts, "photometric": photometric,
             "sop_class": str(ds.get("SOPClassUID", "") or "")}
    if warn_msgs:
        extra["warnings"] = warn_msgs
    frames = []
    for i in range(n):
        meta = FrameMeta(source=os.fspath(path), frame_index=i, n_frames=n, modality=modality,
                         original_shape=original_shape, bit_depth=bits, patient_id=pid,
                         study_id=sid, extra=dict(extra))
        frames.append(Frame(np.ascontiguousarray(pixels[i]), meta))
    return frames


# --------------------------------------------------------------------------------------- writing
def _ds_str(x: float) -> str:
    """A decimal string (VR DS) of at most 16 characters."""
    s = f"{x:.10g}"
    return s if len(s) <= 16 else f"{x:.8g}"


def _scaled_spacing(value, src_rows: int, src_cols: int, rows: int, cols: int) -> list[str]:
    row_sp, col_sp = float(value[0]), float(value[1])
    return [_ds_str(row_sp * src_rows / rows), _ds_str(col_sp * src_cols / cols)]


def write_dicom(
    path: str | os.PathLike,
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    source: Dataset | None = None,
    uid_mapper: UIDMapper,
    modality: str | None = None,
    description: str = "",
    frame_time_ms: float | None = None,
) -> None:
    """Write frames in [0, 1] as a 16-bit MONOCHROME2 DICOM file, atomically and deterministically.

    Parameters
    ----------
    path : path-like
        Output file.
    frames : ndarray
        (H, W) or (N, H, W) floats in [0, 1] (clipped), stored as ``round(x * 65535)``.
    source : pydicom.Dataset, optional
        Header of the file the frames came from (e.g. :func:`read_dicom_dataset`). It is
        de-identified first (:func:`~medcloak.io.deid.deidentify`); then the study UID (mapped),
        the modality and :data:`CARRIED_ATTRIBUTES` are taken from the de-identified copy.
    uid_mapper : UIDMapper
        Makes every UID: study = ``map(source StudyInstanceUID)`` (or ``derive("study")`` without
        a source); series and instance UIDs are derived from the source UIDs, the description
        and (instance) a hash of the stored pixels.
    modality : str, optional
        Overrides the source's Modality. ``"XA"`` writes X-Ray Angiographic Image Storage;
        anything else Secondary Capture (Multi-frame Grayscale Word SC for N > 1).
    description : str
        SeriesDescription of the output (e.g. ``"medcloak obfuscated"``).
    frame_time_ms : float, optional
        FrameTime for N > 1; default: the source's FrameTime, else ``1000 / CineRate``, else
        :data:`DEFAULT_FRAME_TIME_MS`.
    """
    arr = np.asarray(frames, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise MedcloakError(f"write_dicom needs (H, W) or (N, H, W) frames, got shape {np.shape(frames)}", path)
    if not np.all(np.isfinite(arr)):
        raise MedcloakError("frames contain NaN or infinite values", path)
    if source is not None and not isinstance(source, Dataset):
        raise MedcloakError(f"source must be a pydicom Dataset, got {type(source).__name__}", path)
    n, rows, cols = arr.shape
    stored = to_uint(arr, bits=16)

    clean = deidentify(source, uid_mapper=uid_mapper) if source is not None else None
    mod = (modality or (str(clean.get("Modality", "")) if clean is not None else "") or "OT").strip().upper()
    xa = mod == "XA"
    sop_class = XRayAngiographicImageStorage if xa else (
        SecondaryCaptureImageStorage if n == 1 else MultiFrameGrayscaleWordSecondaryCaptureImageStorage)

    src_study = str(source.get("StudyInstanceUID", "") or "") if source is not None else ""
    src_series = str(source.get("SeriesInstanceUID", "") or "") if source is not None else ""
    src_sop = str(source.get("SOPInstanceUID", "") or "") if source is not None else ""
    pixel_hash = hashlib.sha256(stored.tobytes() + repr(stored.shape).encode()).hexdigest()
    study_uid = uid_mapper.map(src_study) if src_study else uid_mapper.derive("study")
    series_uid = uid_mapper.derive("series", src_series, description, str(sop_class))
    sop_uid = uid_mapper.derive("sop", src_sop, description, str(sop_class), pixel_hash)

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    if clean is not None:
        for kw in CARRIED_ATTRIBUTES:
            if kw in clean and clean[kw].value not in (None, "", []):
                ds[kw] = clean[kw]
        src_rows, src_cols = int(source.get("Rows", rows) or rows), int(source.get("Columns", cols) or cols)
        if (src_rows, src_cols) != (rows, cols):
            for kw in _SPACING:
                if kw in ds and len(ds[kw].value) == 2:
                    ds[kw].value = _scaled_spacing(ds[kw].value, src_rows, src_cols, rows, cols)
            if "PixelAspectRatio" in ds:
                del ds["PixelAspectRatio"]
    # SOP common, patient and study (identifying type-2 attributes present but empty)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = (clean.DeidentificationMethod if clean is not None
                                 else "synthetic or de-identified input (medcloak)")
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    # series, equipment, image
    ds.Modality = mod if xa else (mod if mod != "" else "OT")
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    if description:
        ds.SeriesDescription = description
    ds.Manufacturer = ""
    ds.InstanceNumber = 1
    if "PatientOrientation" not in ds:
        ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "SECONDARY", "SINGLE PLANE"] if xa else ["DERIVED", "SECONDARY"]
    if not xa:
        ds.ConversionType = "WSD"
    if "BurnedInAnnotation" not in ds:
        ds.BurnedInAnnotation = "NO"
    if xa and "PixelIntensityRelationship" not in ds:
        ds.PixelIntensityRelationship = "LIN"
    ds.ContentDate = ""
    ds.ContentTime = ""
    # image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if n > 1:
        ft = frame_time_ms
        if ft is None and "FrameTime" in ds:
            ft = float(ds.FrameTime)
        if ft is None and "CineRate" in ds and float(ds.CineRate) > 0:
            ft = 1000.0 / float(ds.CineRate)
        ds.NumberOfFrames = n
        ds.FrameTime = _ds_str(float(ft if ft is not None else DEFAULT_FRAME_TIME_MS))
        ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    elif "FrameTime" in ds:
        del ds["FrameTime"]
    if not xa and n > 1:
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.PresentationLUTShape = "IDENTITY"
    ds.PixelData = np.ascontiguousarray(stored.astype("<u2")).tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.preamble = b"\0" * 128

    buf = _io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as exc:
        raise MedcloakError(f"cannot encode DICOM ({exc.__class__.__name__}: {exc})", path) from None
    atomic_write_bytes(path, buf.getvalue())
