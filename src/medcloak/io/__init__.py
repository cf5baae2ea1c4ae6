"""Reading and writing images, DICOM and dataset manifests (one place converts files <-> [0,1] floats).

The names below are loaded on first use (PEP 562): importing one submodule, such as
``medcloak.io.limits``, no longer imports pydicom (0.18 s, with requests through pydicom.data) in
every process that obfuscates PNG files; ``from medcloak.io import read_frames`` works as before.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Frame": "frames",
    "FrameMeta": "frames",
    "read_frames": "load",
    "iter_inputs": "load",
    "is_supported": "load",
    "load_frames": "arrays",
    "load_split": "arrays",
    "read_dicom": "dicom",
    "read_dicom_dataset": "dicom",
    "write_dicom": "dicom",
    "write_png": "images",
    "write_npy": "images",
    "deidentify": "deid",
    "UIDMapper": "deid",
    "build_dataset": "intake",
    "IntakeSummary": "intake",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"medcloak.io.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medcloak.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
