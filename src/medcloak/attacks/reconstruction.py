"""Learned reconstruction attacks T1-T3: an inverse U-Net from obfuscated to original frames.

Threat models (``docs/threat-model.md``):

* **T1 known-plaintext** (:func:`known_plaintext`): ``n`` leaked (original, obfuscated) pairs made
  with the victim's key and VAE. Besides the obfuscated frame the network gets a second input
  channel, the *level table*: for every obfuscated grey level, the mean original value of the
  leaked pixels at that level (:func:`level_table`). This inverts the (non-bijective) intensity
  map as far as the leaked pairs allow; the network then undoes the rest.
* **T2 same-domain** (:func:`same_domain`): the attacker's own angiograms (other patients), an
  own VAE fitted with the public algorithm and config, own keys; builds pairs, trains the
  inverse network and applies it to the victim's frames.
* **T3 cross-domain** (:func:`cross_domain`): as T2, but the attacker owns no angiograms, only
  other images (:func:`cross_domain_images`: radiographs, CT and MR from ``pydicom-data``,
  scikit-image's bundled pictures, Fashion-MNIST when Debian's package is installed).

The attacker runs the public algorithm through a :class:`PublicScheme`: ``fit`` trains its
trained parts (the VAE) on the attacker's own frames and returns a function
``obfuscate(frames, key_index)``. With ``frames_per_key > 0`` T2/T3 draw a fresh attacker key
every few frames, so the network learns what survives *any* key (band outlines), not one key's
table; ``frames_per_key = 0`` uses one own key, as in the paper.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import nn

from medcloak.attacks.unet import NetConfig, predict, train_network
from medcloak.errors import MedcloakError

__all__ = [
    "KeyedObfuscate",
    "PublicScheme",
    "IdentityScheme",
    "MonotoneScheme",
    "MapScheme",
    "MedcloakScheme",
    "attacker_key",
    "obfuscate_under_keys",
    "level_table",
    "InverseAttack",
    "train_inverse",
    "known_plaintext",
    "same_domain",
    "cross_domain",
    "cross_domain_images",
    "cross_domain_sources",
]

#: ``obfuscate(frames (N, H, W), key_index) -> obfuscated (N, H, W)``: the public algorithm,
#: fitted by the attacker, under the attacker's ``key_index``-th own key.
KeyedObfuscate = Callable[[np.ndarray, int], np.ndarray]


class PublicScheme(Protocol):
    """The public obfuscation algorithm, as an attacker re-runs it on own data with own keys."""

    name: str

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False) -> KeyedObfuscate:
        """Fit the trained parts (e.g. the VAE) on ``frames`` (N, H, W) in [0, 1]."""
        ...


def attacker_key(seed: int, index: int):
    """The attacker's ``index``-th own key, reproducible from ``seed``.

    These keys protect nothing (they belong to the simulated attacker), so they come from a
    hash of the seed rather than the CSPRNG, to make attack results repeatable.
    """
    from medcloak.keys import Key

    return Key(hashlib.sha256(f"medcloak/attacker/{int(seed)}/{int(index)}".encode()).digest())


@dataclass(frozen=True)
class IdentityScheme:
    """No obfuscation at all (a weak baseline: every attack must succeed against it)."""

    name: str = "identity"

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False) -> KeyedObfuscate:
        return lambda x, key_index: np.asarray(x, dtype=np.float32).copy()


@dataclass(frozen=True)
class MonotoneScheme:
    """A fixed, key-independent monotone intensity map ``x ** gamma`` (weak baseline)."""

    gamma: float = 0.5
    name: str = "monotone"

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False) -> KeyedObfuscate:
        g = np.float32(self.gamma)
        return lambda x, key_index: np.clip(np.asarray(x, dtype=np.float32), 0, 1) ** g


@dataclass(frozen=True)
class MapScheme:
    """The keyed random intensity map alone (``order="map-only"``), with no trained part."""

    levels: int = 256
    name: str = "map-only"

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False) -> KeyedObfuscate:
        from medcloak.obfuscation.mapping import IntensityMap

        @functools.lru_cache(maxsize=64)
        def table(key_index: int) -> IntensityMap:
            return IntensityMap.from_key(attacker_key(seed, key_index), levels=self.levels)

        return lambda x, key_index: table(int(key_index))(x)


@dataclass(frozen=True)
class MedcloakScheme:
    """medcloak's own pipeline (:class:`medcloak.obfuscation.pipeline.Obfuscator`), public config.

    ``fit`` trains one attacker VAE under attacker key 0 with the public ``config``. For the
    orders whose VAE never sees key-dependent input (``vae-then-map``, ``map-only``) other key
    indices reuse that VAE under their own key (own table, own latent noise); for
    ``map-then-vae`` each key index fits its own VAE on the same frames (slow).
    """

    config: object  # medcloak.obfuscation.pipeline.ObfuscationConfig
    name: str = "medcloak"

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False) -> KeyedObfuscate:
        from medcloak.obfuscation.pipeline import Obfuscator

        frames = np.asarray(frames, dtype=np.float32)
        n_val = max(1, len(frames) // 10) if len(frames) > 1 else 0

        def fitted(key_index: int) -> Obfuscator:
            o = Obfuscator(attacker_key(seed, key_index), config=self.config)
            o.fit(frames[n_val:], frames[:n_val] if n_val else None, progress=progress)
            return o

        base = fitted(0)

        @functools.lru_cache(maxsize=8)
        def keyed(key_index: int) -> Obfuscator:
            if key_index == 0:
                return base
            if base.config.order == "map-then-vae":
                return fitted(key_index)
            o = Obfuscator(attacker_key(seed, key_index), config=base.config)
            o.model = base.model  # the attacker's own VAE, reused under another own key
            return o

        return lambda x, key_index: keyed(int(key_index)).obfuscate(x)


def obfuscate_under_keys(
    obfuscate: KeyedObfuscate, frames: np.ndarray, *, frames_per_key: int, first_key: int = 0
) -> np.ndarray:
    """Obfuscate ``frames`` with a fresh key every ``frames_per_key`` frames (0: one key).

    Returns float32 (N, H, W). Chunk ``i`` uses key index ``first_key + i``.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames_per_key <= 0:
        return np.asarray(obfuscate(frames, first_key), dtype=np.float32)
    out = np.empty_like(frames)
    for i, s in enumerate(range(0, len(frames), frames_per_key)):
        out[s : s + frames_per_key] = obfuscate(frames[s : s + frames_per_key], first_key + i)
    return out


def level_table(obfuscated: np.ndarray, originals: np.ndarray, *, levels: int) -> np.ndarray:
    """Mean original value of the pixels at each obfuscated grey level.

    Parameters
    ----------
    obfuscated, originals : ndarray (N, H, W) in [0, 1]
        Leaked pairs. Obfuscated values are read as levels ``round(x * (levels - 1))``.
    levels : int
        Grey levels of the obfuscated frames.

    Returns
    -------
    ndarray, float32 (levels,)
        ``E[original | obfuscated level]``; levels never seen in the pairs get the value of the
        nearest seen level below (or above) them, and the overall mean if no level was seen.
    """
    q = np.rint(np.clip(np.asarray(obfuscated, np.float64), 0, 1) * (levels - 1)).astype(np.int64).ravel()
    o = np.asarray(originals, np.float64).ravel()
    if q.size != o.size:
        raise MedcloakError(f"level table: {q.size} obfuscated pixels vs {o.size} original pixels")
    count = np.bincount(q, minlength=levels)
    total = np.bincount(q, weights=o, minlength=levels)
    seen = count > 0
    if not seen.any():
        return np.full(levels, 0.5, np.float32)
    table = np.where(seen, total / np.maximum(count, 1), 0.0)
    idx = np.where(seen, np.arange(levels), -1)
    idx = np.maximum.accumulate(idx)  # nearest seen level below
    first = int(np.argmax(seen))
    idx[idx < 0] = first
    return table[idx].astype(np.float32)


@dataclass
class InverseAttack:
    """A trained inverse network (and, for T1, the level table it reads as a second channel)."""

    net: nn.Module
    levels: int
    table: np.ndarray | None = None

    def inputs(self, obfuscated: np.ndarray) -> np.ndarray:
        """Network input for obfuscated frames: (N, 1 or 2, H, W) float32."""
        x = np.asarray(obfuscated, dtype=np.float32)
        if self.table is None:
            return x[:, None]
        q = np.rint(np.clip(x, 0, 1) * (self.levels - 1)).astype(np.int64)
        return np.stack([x, self.table[q]], axis=1)

    def apply(self, obfuscated: np.ndarray) -> np.ndarray:
        """Reconstructions, float32 (N, H, W) in [0, 1]."""
        return predict(self.net, self.inputs(obfuscated))


def train_inverse(
    obfuscated: np.ndarray,
    originals: np.ndarray,
    *,
    net: NetConfig,
    levels: int = 256,
    use_table: bool = False,
    progress: bool = True,
    desc: str = "inverse",
) -> InverseAttack:
    """Train an inverse network on (obfuscated, original) pairs (L1 + SSIM loss, see :mod:`.unet`)."""
    obfuscated = np.asarray(obfuscated, dtype=np.float32)
    originals = np.asarray(originals, dtype=np.float32)
    if obfuscated.shape != originals.shape or obfuscated.ndim != 3:
        raise MedcloakError(f"inverse attack: pairs must be two (N, H, W) stacks, got {obfuscated.shape} and {originals.shape}")
    table = level_table(obfuscated, originals, levels=levels) if use_table else None
    attack = InverseAttack(net=None, levels=levels, table=table)  # type: ignore[arg-type]
    attack.net = train_network(attack.inputs(obfuscated), originals, net, task="inverse", progress=progress, desc=desc)
    return attack


def known_plaintext(
    victim_obfuscate: Callable[[np.ndarray], np.ndarray],
    leaked_originals: np.ndarray,
    *,
    net: NetConfig,
    levels: int = 256,
    use_table: bool = True,
    progress: bool = True,
) -> InverseAttack:
    """T1: train on ``n = len(leaked_originals)`` pairs made with the victim's own obfuscator."""
    leaked = np.asarray(leaked_originals, dtype=np.float32)
    return train_inverse(victim_obfuscate(leaked), leaked, net=net, levels=levels, use_table=use_table,
                         progress=progress, desc=f"T1 n={len(leaked)}")


def same_domain(
    scheme: PublicScheme,
    attacker_frames: np.ndarray,
    *,
    net: NetConfig,
    levels: int = 256,
    frames_per_key: int = 4,
    seed: int = 1,
    fitted: KeyedObfuscate | None = None,
    progress: bool = True,
    desc: str = "T2",
) -> InverseAttack:
    """T2: fit the public scheme on the attacker's own frames, obfuscate them with own keys
    (a fresh one every ``frames_per_key`` frames; 0 = a single key), train the inverse net.

    ``fitted`` is the scheme already fitted on ``attacker_frames`` (skips the fit)."""
    frames = np.asarray(attacker_frames, dtype=np.float32)
    obfuscate = fitted if fitted is not None else scheme.fit(frames, seed=seed, progress=progress)
    obf = obfuscate_under_keys(obfuscate, frames, frames_per_key=frames_per_key)
    return train_inverse(obf, frames, net=net, levels=levels, use_table=False, progress=progress, desc=desc)


def cross_domain(
    scheme: PublicScheme,
    *,
    n: int,
    size: int,
    net: NetConfig,
    levels: int = 256,
    frames_per_key: int = 4,
    seed: int = 2,
    progress: bool = True,
) -> InverseAttack:
    """T3: as :func:`same_domain` on ``n`` non-angiography images (:func:`cross_domain_images`)."""
    images = cross_domain_images(n, size=size, seed=seed)
    return same_domain(scheme, images, net=net, levels=levels, frames_per_key=frames_per_key, seed=seed,
                       progress=progress, desc="T3")


# ----------------------------------------------------------------------------- cross-domain data

# RG1_UNCR.dcm is left out: medcloak.synth crops its backgrounds from it, so a "cross-domain"
# attacker holding it would hold the victim's anatomy.
_DICOM_SOURCES = ("RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "CT_small.dcm", "MR_small.dcm")
_SKIMAGE_SOURCES = ("camera", "retina", "coins", "moon", "text", "page", "grass", "gravel", "brick", "cell",
                    "clock", "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
                    "rocket", "microaneurysms")
_FASHION_DIRS = ("/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist", "/usr/share/datasets/fashion-mnist",
                 "/usr/share/data/fashion-mnist")


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1).astype(np.float32)


def _grey(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return _unit(a)


@functools.lru_cache(maxsize=1)
def _source_images() -> tuple[tuple[str, np.ndarray], ...]:
    """Grey non-angiography images available offline, float32 in [0, 1]."""
    import warnings

    out: list[tuple[str, np.ndarray]] = []
    try:
        import pydicom
        from pydicom.data import get_testdata_file
        from pydicom.pixels import apply_modality_lut

        for name in _DICOM_SOURCES:
            try:
                path = get_testdata_file(name, download=False)
                if path is None:
                    continue
                ds = pydicom.dcmread(path)
                a = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
                if a.ndim == 3:
                    a = a[a.shape[0] // 2]
                if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
                    a = a.max() - a
                out.append((f"dicom:{name}", _unit(a)))
            except Exception:  # noqa: BLE001 - a missing or undecodable sample is skipped
                continue
    except ImportError:
        pass
    import skimage.data

    for name in _SKIMAGE_SOURCES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append((f"skimage:{name}", _grey(getattr(skimage.data, name)())))
        except Exception:  # noqa: BLE001 - images that need a download are skipped
            continue
    return tuple(out)


def _fashion_mnist(limit: int) -> np.ndarray | None:
    """Fashion-MNIST images from Debian's ``dataset-fashion-mnist`` if installed (never downloaded)."""
    import gzip

    for d in _FASHION_DIRS:
        for fname in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
            p = Path(d) / fname
            if p.is_file():
                try:
                    raw = (gzip.open if p.suffix == ".gz" else open)(p, "rb").read()
                    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
                    return np.frombuffer(raw, np.uint8, count=min(n, limit) * h * w, offset=16).reshape(-1, h, w) / np.float32(255)
                except Exception:  # noqa: BLE001
                    return None
    return None


def cross_domain_images(n: int, *, size: int, seed: int = 0) -> np.ndarray:
    """``n`` non-angiography frames resized to ``size`` x ``size``, float32 (N, H, W) in [0, 1].

    Random square crops (side 1/8 to 1/2 of the shorter side, random flips) of the bundled
    radiographs, CT and MR slices of ``pydicom-data`` and pydicom, scikit-image's bundled
    pictures (grey), and, when Debian's ``dataset-fashion-mnist`` is installed, Fashion-MNIST
    images (a quarter of the set). Nothing is downloaded.
    """
    from skimage.transform import resize

    sources = [img for _, img in _source_images()]
    if not sources:
        raise MedcloakError("T3: no cross-domain images available (pydicom-data / scikit-image data missing)")
    rng = np.random.default_rng(seed)
    fm = _fashion_mnist(limit=max(n, 1))
    n_fm = 0 if fm is None else min(len(fm), n // 4)
    out = np.empty((n, size, size), np.float32)
    for i in range(n - n_fm):
        img = sources[rng.integers(len(sources))]
        short = min(img.shape)
        side = int(rng.integers(max(8, short // 8), max(9, short // 2 + 1)))
        side = min(side, short)
        r, c = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        crop = img[r : r + side, c : c + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        out[i] = resize(crop, (size, size), order=1, anti_aliasing=side > size, preserve_range=True)
    for j in range(n_fm):
        out[n - n_fm + j] = resize(fm[rng.integers(len(fm))], (size, size), order=1, preserve_range=True)
    return np.clip(out, 0, 1)


def cross_domain_sources() -> list[str]:
    """Names of the offline images :func:`cross_domain_images` draws from (for reports)."""
    names = [name for name, _ in _source_images()]
    if _fashion_mnist(limit=1) is not None:
        names.append("fashion-mnist")
    return names
