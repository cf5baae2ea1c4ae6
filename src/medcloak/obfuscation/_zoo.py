"""Helpers shared by the published rival schemes (``blockwise``, ``randenc``, ``pixelate``,
``blur``, ``svd``): the config mixin, config validators, and the keyed draws.

Every keyed draw here reads the key stream (:meth:`medcloak.keys.Key.uniform` /
:meth:`~medcloak.keys.Key.normal`) under a label the calling scheme chooses (unique per scheme,
e.g. ``"blockwise/block-perm"``); nothing protective comes from a numpy or torch seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import fields

import numpy as np

from medcloak.errors import MedcloakError

__all__ = ["ZooConfig", "check_int", "check_bool", "check_float", "frame_context", "keyed_permutation",
           "keyed_orthogonal", "grid"]


class ZooConfig:
    """Mixin for a scheme's frozen dataclass config: :meth:`to_dict` / :meth:`from_dict`."""

    def to_dict(self) -> dict:
        """JSON-serialisable dict of every field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`MedcloakError`."""
        if not isinstance(d, dict):
            raise MedcloakError(f"{cls.__name__}: a config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise MedcloakError(f"{cls.__name__}: unknown field(s) {', '.join(map(str, unknown))}")
        return cls(**d)


def check_int(owner: str, name: str, value, *, lo: int | None = None, hi: int | None = None,
              allowed: tuple[int, ...] | None = None, optional: bool = False) -> None:
    """Refuse a config field that is not an int (bools refused) in ``[lo, hi]`` / ``allowed``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MedcloakError(f"{owner}: {name} must be an integer{' or None' if optional else ''}, got {value!r}")
    if allowed is not None and value not in allowed:
        raise MedcloakError(f"{owner}: {name} must be one of {', '.join(map(str, allowed))}, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise MedcloakError(f"{owner}: {name} must be in {lo}..{hi}, got {value}")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise MedcloakError(f"{owner}: {name} must be true or false, got {value!r}")


def check_float(owner: str, name: str, value, *, positive: bool = True, optional: bool = False) -> None:
    """Refuse a field that is not a finite (positive) number."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or (positive and value <= 0):
        what = "a finite positive number" if positive else "a finite number"
        raise MedcloakError(f"{owner}: {name} must be {what}{' or None' if optional else ''}, got {value!r}")


def grid(owner: str, frames_shape: tuple[int, ...], p: int) -> tuple[int, int]:
    """``(H // p, W // p)``; a clear error when a side is not a multiple of ``p``."""
    h, w = int(frames_shape[-2]), int(frames_shape[-1])
    if h % p or w % p or h == 0 or w == 0:
        raise MedcloakError(f"{owner}: frame sides must be positive multiples of {p}, got {h}x{w}; "
                            f"crop or resize the frames")
    return h // p, w // p


def frame_context(frame: np.ndarray) -> bytes:
    """SHA-256 of the frame's little-endian float32 bytes: the context of per-frame keyed draws
    (as :mod:`medcloak.obfuscation.pipeline` keys its latent noise)."""
    return hashlib.sha256(np.ascontiguousarray(frame, dtype="<f4").tobytes()).digest()


def keyed_permutation(key, label: str, n: int, *, context: bytes = b"") -> np.ndarray:
    """A permutation of ``range(n)`` (int64): the stable argsort of ``n`` key-stream uniforms.

    Ties need two equal 53-bit uniforms (probability about ``n**2 / 2**54``); the stable sort
    keeps even those deterministic.
    """
    return np.argsort(key.uniform(label, int(n), context=context), kind="stable")


def keyed_orthogonal(key, label: str, n: int, *, context: bytes = b"") -> np.ndarray:
    """A keyed random orthogonal ``n x n`` matrix (float64), Haar distributed.

    QR of a key-stream standard-normal matrix, with the columns' signs fixed by ``diag(R)``
    (Mezzadri 2007), so the draw is unique for the key and uniform over the orthogonal group.
    """
    a = key.normal(label, (int(n), int(n)), context=context).astype(np.float64)
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d[None, :]
