"""Reading and writing images, DICOM and dataset manifests (one place converts files <-> [0,1] floats)."""

from medcloak.io.arrays import load_frames, load_split
from medcloak.io.deid import UIDMapper, deidentify
from medcloak.io.dicom import read_dicom, read_dicom_dataset, write_dicom
from medcloak.io.frames import Frame, FrameMeta
from medcloak.io.images import write_npy, write_png
from medcloak.io.intake import IntakeSummary, build_dataset
from medcloak.io.load import is_supported, iter_inputs, read_frames

__all__ = [
    "Frame",
    "FrameMeta",
    "read_frames",
    "iter_inputs",
    "is_supported",
    "load_frames",
    "load_split",
    "read_dicom",
    "read_dicom_dataset",
    "write_dicom",
    "write_png",
    "write_npy",
    "deidentify",
    "UIDMapper",
    "build_dataset",
    "IntakeSummary",
]
