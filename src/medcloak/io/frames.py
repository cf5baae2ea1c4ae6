"""The in-memory image record every reader returns.

Convention (the project README, "Layout"): pixels are ``float32`` in [0, 1], shape (H, W). Identifiers of the
patient and study are kept in memory only (for patient-wise splits) and are never written to
outputs by medcloak's writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Frame", "FrameMeta"]


@dataclass(frozen=True)
class FrameMeta:
    """Where a frame came from and what it was before conversion.

    Attributes
    ----------
    source : str
        Path of the file the frame was read from.
    frame_index : int
        Index of the frame inside a multi-frame file (0 for single images).
    n_frames : int
        Number of frames in the source file.
    modality : str
        DICOM Modality (``"XA"``, ``"CR"``, ...) or ``"OT"`` for ordinary image files.
    original_shape : tuple of int
        Shape of the stored pixel array of this frame before conversion (rows, cols[, samples]).
    bit_depth : int
        Bits of the stored values (BitsStored for DICOM, 8 or 16 for PNG/TIFF, 32 for floats).
    patient_id, study_id : str or None
        In-memory only, for patient-wise splitting; never written out.
    extra : dict
        Format-specific details (transfer syntax, photometric interpretation, ...).
    """

    source: str
    frame_index: int = 0
    n_frames: int = 1
    modality: str = "OT"
    original_shape: tuple[int, ...] = ()
    bit_depth: int = 8
    patient_id: str | None = None
    study_id: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """One grey-scale image: ``pixels`` float32 (H, W) in [0, 1] plus its :class:`FrameMeta`."""

    pixels: np.ndarray
    meta: FrameMeta

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2 or self.pixels.dtype != np.float32:
            raise ValueError(
                f"Frame.pixels must be float32 (H, W); got {self.pixels.dtype} {self.pixels.shape}"
            )
