"""Test-only schemes: weak obfuscations every attack must defeat.

Registering them here shows the plug-in promise: a scheme is one class plus one ``register``
line, and the whole study, the batch runner and every attack then work on it unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medcloak.obfuscation.scheme import Scheme, register


@dataclass(frozen=True)
class _NoConfig:
    def to_dict(self) -> dict:
        return {}

    @classmethod
    def from_dict(cls, d: dict) -> "_NoConfig":
        return cls(**d)


@dataclass(frozen=True)
class GammaConfig:
    gamma: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GammaConfig":
        return cls(**d)


@register
class IdentityScheme(Scheme):
    """No obfuscation at all: the frame goes out as it is, in 256 grey levels (an 8-bit PNG)."""

    name = "identity"
    Config = _NoConfig
    output = "grey levels"

    @property
    def output_levels(self) -> int:
        return 256

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        return np.rint(frames * 255) / np.float32(255)


@register
class MonotoneScheme(Scheme):
    """A fixed, key-independent monotone intensity map ``x ** gamma``."""

    name = "monotone"
    Config = GammaConfig
    output = "image"

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        return frames ** np.float32(self.config.gamma)
