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

The attacker runs the public algorithm through :class:`~medcloak.attacks.own.PublicScheme`
(any registered scheme): ``fit`` trains its trained parts (the VAE) on the attacker's own frames
and returns a function ``obfuscate(frames, key_index)``. With ``frames_per_key > 0`` T2/T3 draw
a fresh attacker key every few frames, so the network learns what survives *any* key (band
outlines), not one key's table; ``frames_per_key = 0`` uses one own key, as in the paper.

The plug-ins :class:`KnownPlaintext` (T1), :class:`SameDomain` (T2) and :class:`CrossDomain`
(T3) wrap these functions for :func:`medcloak.attacks.runner.run_attacks`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from medcloak.attacks.base import Attack, Knowledge
from medcloak.attacks.own import KeyedObfuscate, PublicScheme, obfuscate_under_keys
from medcloak.attacks.unet import NetConfig, predict, train_network
from medcloak.errors import MedcloakError

__all__ = [
    "KnownPlaintext",
    "SameDomain",
    "CrossDomain",
    "level_table",
    "InverseAttack",
    "train_inverse",
    "known_plaintext",
    "same_domain",
    "cross_domain",
    "cross_domain_images",
    "cross_domain_sources",
]

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
    obfuscate = fitted if fitted is not None else scheme.fit(frames, seed=seed, progress=progress, images=True)
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


# ----------------------------------------------------------------------------- plug-ins


def _keys_variant(config) -> str:
    return "one own key" if config.frames_per_key <= 0 else f"own key every {config.frames_per_key} frames"


class _Inverse(Attack):
    """An attack whose result is an inverse network applied to the victim's frames."""

    inverse: InverseAttack

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:
        return self.inverse.apply(obfuscated)


class KnownPlaintext(_Inverse):
    """T1: n leaked pairs under the victim's key and trained parts (one row per n of ``config.t1_n``)."""

    threat = "T1"
    knows = "n leaked (original, obfuscated) pairs under the victim's key and VAE"

    @classmethod
    def variants(cls, knowledge: Knowledge) -> list[str]:
        pool = knowledge.leak_pool
        if pool is None or knowledge.leak is None:
            raise MedcloakError("T1 needs the victim's leaked pairs (leak and leak_pool)")
        return [f"n={n}" for n in sorted({min(int(n), len(pool)) for n in knowledge.config.t1_n if n > 0})]

    @property
    def n_pairs(self) -> int:
        return int(self.variant[2:])

    def fit(self, knowledge: Knowledge) -> "KnownPlaintext":
        c, pool = knowledge.config, knowledge.leak_pool
        perm = np.random.default_rng(c.attacker_seed + 1).permutation(len(pool))
        self.inverse = known_plaintext(knowledge.leak, pool[perm[: self.n_pairs]], net=c.net,
                                       levels=knowledge.levels or 256,
                                       use_table=c.t1_table and knowledge.levels is not None,
                                       progress=knowledge.progress)
        return self


class SameDomain(_Inverse):
    """T2: own angiograms, the public algorithm with own keys, an inverse network (the paper's attacker)."""

    threat = "T2"
    knows = "the algorithm, its own angiograms, its own VAE and key"

    def fit(self, knowledge: Knowledge) -> "SameDomain":
        c = knowledge.config
        self.variant = _keys_variant(c)
        self._n = len(knowledge.attacker.frames)
        self.inverse = same_domain(knowledge.scheme, knowledge.attacker.frames, net=c.net,
                                   levels=knowledge.levels or 256, frames_per_key=c.frames_per_key,
                                   seed=c.attacker_seed, fitted=knowledge.own_obfuscation(),
                                   progress=knowledge.progress)
        return self

    @property
    def n_pairs(self) -> int:
        return self._n


class CrossDomain(_Inverse):
    """T3: as T2 on non-angiography images (the paper's second attacker)."""

    threat = "T3"
    knows = "the algorithm and its own non-angiography images"

    @classmethod
    def applies(cls, knowledge: Knowledge) -> str | None:
        if knowledge.uses_labels:
            return "the scheme trains with task labels, which non-angiography images do not have"
        return super().applies(knowledge)

    def fit(self, knowledge: Knowledge) -> "CrossDomain":
        c = knowledge.config
        self.variant = _keys_variant(c)
        self._n = int(c.n_cross)
        self.inverse = cross_domain(knowledge.scheme, n=c.n_cross, size=knowledge.size, net=c.net,
                                    levels=knowledge.levels or 256, frames_per_key=c.frames_per_key,
                                    seed=c.attacker_seed + 4, progress=knowledge.progress)
        return self

    @property
    def n_pairs(self) -> int:
        return self._n


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
