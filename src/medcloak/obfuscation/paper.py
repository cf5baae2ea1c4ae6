"""The scheme ``paper``: Popescu et al. 2022, a VAE then a keyed random non-bijective intensity map.

Source: A. B. Popescu et al., "Obfuscation Algorithm for Privacy-Preserving Deep Learning-Based
Medical Image Analysis", Applied Sciences 12(8):3997, 2022 (only the abstract is available to
us). Our choices where it is silent (order of the stages, latent, levels, VAE architecture)
are the fields of :class:`~medcloak.obfuscation.pipeline.ObfuscationConfig`; the engine is the
:class:`~medcloak.obfuscation.pipeline.Obfuscator`, which this class wraps without changing a
single output byte (``tests/test_schemes.py`` holds a frozen hash).

Output: ``levels`` grey levels (``out_levels`` of the table), an image of the input's size
(``map-only``) or of the VAE's ``image_size``. The VAE never sees key-dependent input for
``vae-then-map`` / ``map-only``, so one fitted VAE serves any key (:meth:`Scheme.rekey`);
``map-then-vae`` fits its VAE on frames mapped under the key.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["PaperScheme"]


def _frames(x) -> np.ndarray | None:
    if x is None:
        return None
    return np.asarray(getattr(x, "frames", x), np.float32)


@register
class PaperScheme(Scheme):
    """VAE -> quantise to ``levels`` -> keyed look-up table (see :mod:`medcloak.obfuscation.pipeline`).

    >>> from medcloak.keys import Key
    >>> s = PaperScheme(order="map-only", levels=16).fit(None, Key(bytes(32)))
    >>> y = s.apply(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    >>> y.shape, len(np.unique(y)) <= 16
    ((8, 8), True)
    """

    name = "paper"
    Config = ObfuscationConfig
    output = "grey levels"

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self.obfuscator: Obfuscator | None = None

    @property
    def key_independent_fit(self) -> bool:  # type: ignore[override]
        return self.config.order != "map-then-vae"

    @property
    def model_fingerprint(self) -> str:
        """The :class:`Obfuscator`'s model fingerprint (unchanged from before schemes existed)."""
        self._require_fitted()
        return self.obfuscator.model_fingerprint

    @property
    def history(self) -> list[dict]:
        """The VAE's per-epoch history (:func:`medcloak.obfuscation.vae.train_vae`)."""
        return [] if self.obfuscator is None else self.obfuscator.history

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None if self.obfuscator is None else self.obfuscator.input_size

    @property
    def output_levels(self) -> int:
        return self.config.resolved_out_levels

    @property
    def output_bits(self) -> int:
        return 8 if self.config.order != "map-then-vae" and self.output_levels <= 256 else 16

    @property
    def uses_torch(self) -> bool:
        return self.config.uses_vae

    def _fit(self, train, *, val=None, progress: bool = False, val_target=None, callback=None) -> None:
        obf = Obfuscator(self.key, config=self.config)
        if self.config.uses_vae:
            x = _frames(train)
            if x is None:
                raise MedcloakError("the paper scheme with a VAE needs training frames")
            obf.fit(x, _frames(val), val_target=val_target, progress=progress, callback=callback)
        self.config = obf.config  # the VAE fills in image_size and its defaults
        self.obfuscator = obf

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        return self.obfuscator.obfuscate(frames)

    def apply_codes(self, frames: np.ndarray, *, bits: int = 8) -> np.ndarray:
        """:meth:`Obfuscator.obfuscate_codes`: the keyed map's integers looked up directly."""
        self._require_fitted()
        a = np.asarray(frames)
        out = self.obfuscator.obfuscate_codes(a if a.ndim == 3 else a[None], bits=bits)
        return out if a.ndim == 3 else out[0]

    def apply_timed(self, frames: np.ndarray) -> tuple[np.ndarray, dict, dict]:
        """Obfuscate, timing the VAE stage and the keyed map apart (``vae-then-map`` only).

        Returns ``(obfuscated, ms per frame of each stage, {"vae": VAE outputs})``; the output is
        exactly :meth:`apply`'s (``obfuscate(x) == mapping(vae_stage(x))``).
        """
        if self.config.order != "vae-then-map":
            return super().apply_timed(frames)
        self._require_fitted()
        n = max(len(frames), 1)
        t0 = time.perf_counter()
        vae = self.obfuscator.vae_stage(frames)
        t1 = time.perf_counter()
        out = self.obfuscator.mapping(vae).astype(np.float32)
        t2 = time.perf_counter()
        return out, {"vae": 1e3 * (t1 - t0) / n, "map": 1e3 * (t2 - t1) / n}, {"vae": vae.astype(np.float32)}

    def _rekeyed(self, key) -> "PaperScheme":
        other = PaperScheme(self.config)
        other.obfuscator = self.obfuscator.with_key(key)
        return other

    def _state_bytes(self) -> bytes:
        return bytes.fromhex(self.obfuscator.model_fingerprint)

    def _save_state(self, directory: Path) -> None:
        self.obfuscator.save(directory, overwrite=True)

    def _load_state(self, directory: Path) -> None:
        obf = Obfuscator.load(directory, self.key)
        if obf.config != self.config:
            raise MedcloakError("scheme.json and obfuscator.json disagree on the config", directory)
        self.obfuscator = obf

    @classmethod
    def _from_legacy(cls, directory: Path, key) -> "PaperScheme":
        """A model folder written by :meth:`Obfuscator.save` alone (before schemes existed)."""
        obf = Obfuscator.load(directory, key)
        scheme = cls(obf.config)
        scheme.key, scheme.obfuscator = key, obf
        return scheme
