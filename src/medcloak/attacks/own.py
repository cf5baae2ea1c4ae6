"""The attacker's own obfuscations: the public algorithm re-run with the attacker's own keys.

T0, T2 and T3 know the scheme and its public config, never the victim's key or trained parts.
They re-run it through the :class:`~medcloak.obfuscation.scheme.Scheme` interface on their own
frames (:class:`PublicScheme`), so every attack works for every registered scheme unchanged.
With a fresh own key every few frames (:func:`obfuscate_under_keys`) a network learns what
survives *any* key, not one key's secret.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["KeyedObfuscate", "PublicScheme", "attacker_key", "victim_key", "obfuscate_under_keys", "image_like"]

#: ``obfuscate(frames (N, H, W), key_index) -> obfuscated``: the public algorithm, fitted by the
#: attacker, under the attacker's ``key_index``-th own key.
KeyedObfuscate = Callable[[np.ndarray, int], np.ndarray]


def image_like(obfuscated: np.ndarray, shape: tuple[int, int], *, output: str = "image") -> np.ndarray | None:
    """The obfuscated frames as images of the originals' ``shape``, the input of the image attacks.

    Same-size outputs pass unchanged. A low-resolution release (``(N, h, w)`` with ``H / h`` and
    ``W / w`` whole numbers: pixelate, bottleneck) is upsampled by pixel repetition, the input of
    a super-resolution decoder. Anything else is not an image: ``None``; so are patch tokens
    (``output="patch tokens"``, the scheme's :attr:`~medcloak.obfuscation.scheme.Scheme.output`)
    even when their (T, D) happens to equal the frame's shape.

    >>> image_like(np.ones((2, 4, 4), np.float32), (8, 8)).shape
    (2, 8, 8)
    >>> image_like(np.ones((2, 16, 64), np.float32), (8, 8)) is None
    True
    """
    x = np.asarray(obfuscated, dtype=np.float32)
    if x.ndim != 3 or output == "patch tokens":
        return None
    h, w = x.shape[1:]
    if (h, w) == tuple(shape):
        return x
    if h <= shape[0] and w <= shape[1] and shape[0] % h == 0 and shape[1] % w == 0:
        return np.repeat(np.repeat(x, shape[0] // h, axis=1), shape[1] // w, axis=2)
    return None


def attacker_key(seed: int, index: int):
    """The attacker's ``index``-th own key, reproducible from ``seed``.

    These keys protect nothing (they belong to the simulated attacker), so they come from a
    hash of the seed rather than the CSPRNG, to make attack results repeatable.
    """
    from medcloak.keys import Key

    return Key(hashlib.sha256(f"medcloak/attacker/{int(seed)}/{int(index)}".encode()).digest())


def victim_key(seed: int, index: int):
    """The ``index``-th SIMULATED victim key, reproducible from ``seed`` (index >= 1).

    Used to score key-dependent figures (T0, T4) over several victim keys: the victim's
    fitted scheme is re-keyed (:meth:`~medcloak.obfuscation.scheme.Scheme.rekey`) under these.
    They protect nothing (they simulate other draws of the victim's key), so, like
    :func:`attacker_key`, they come from a hash of the seed -- under their own label, so they
    never coincide with an attacker's keys.

    Examples
    --------
    >>> victim_key(0, 1) == victim_key(0, 1), victim_key(0, 1) == attacker_key(0, 1)
    (True, False)
    """
    from medcloak.keys import Key

    return Key(hashlib.sha256(f"medcloak/victim-simulation/{int(seed)}/{int(index)}".encode()).digest())


@dataclass(frozen=True)
class PublicScheme:
    """The public algorithm as an attacker re-runs it: a registered scheme's name and config.

    Parameters
    ----------
    scheme : str
        A name of :func:`medcloak.obfuscation.scheme.scheme_names`.
    config : Config or dict, optional
        The scheme's public config (default: the scheme's defaults).

    Examples
    --------
    >>> from medcloak.obfuscation.pipeline import ObfuscationConfig
    >>> pub = PublicScheme("paper", ObfuscationConfig(order="map-only", levels=16))
    >>> obf = pub.fit(np.zeros((2, 8, 8), np.float32), seed=0)
    >>> obf(np.ones((1, 8, 8), np.float32), 3).shape
    (1, 8, 8)
    """

    scheme: str
    config: object = None

    @property
    def name(self) -> str:
        return self.scheme

    def make(self):
        """An unfitted instance of the scheme with this config."""
        from medcloak.obfuscation.scheme import make_scheme

        return make_scheme(self.scheme, self.config)

    def fit(self, frames: np.ndarray, *, seed: int, progress: bool = False, labels=None,
            images: bool = False) -> KeyedObfuscate:
        """Fit the scheme on the attacker's ``frames`` under own key 0; other key indices reuse
        that fit under their own key (:meth:`Scheme.rekey`) or, for schemes whose training sees
        the key, fit again on the same frames.

        ``labels`` (the attacker's own task labels) are handed to schemes that train with labels.
        With ``images`` the returned function gives :func:`image_like` outputs (same-size images),
        what the image attacks (T0, T2, T3) train on, and raises for outputs that are not images;
        without it, the release as the cloud would hold it.
        """
        from medcloak.errors import MedcloakError
        from medcloak.io.frameset import FrameSet

        frames = np.asarray(frames, dtype=np.float32)
        n_val = max(1, len(frames) // 10) if len(frames) > 1 else 0
        if self.make().uses_labels and labels is None:
            raise MedcloakError(f"scheme {self.scheme!r} trains with task labels; this attacker has none")

        def part(sl):
            if labels is None:
                return frames[sl]
            return FrameSet(frames[sl], list(labels)[sl], [""] * len(frames[sl]))

        def fitted(key_index: int):
            return self.make().fit(part(slice(n_val, None)), attacker_key(seed, key_index),
                                   val=part(slice(0, n_val)) if n_val else None, progress=progress)

        base = fitted(0)

        @functools.lru_cache(maxsize=64)
        def keyed(key_index: int):
            if key_index == 0:
                return base
            if not base.key_independent_fit:
                return fitted(key_index)
            return base.rekey(attacker_key(seed, key_index))

        def obfuscate(x, key_index):
            scheme = keyed(int(key_index))
            if not images:
                return scheme.apply(x)
            out = image_like(scheme.apply(x), np.shape(x)[1:], output=scheme.output)
            if out is None:
                raise MedcloakError(f"scheme {self.scheme!r} does not output images: image attacks do not apply")
            return out

        return obfuscate


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
