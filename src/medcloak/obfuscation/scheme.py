"""The obfuscation as a plug-in: the :class:`Scheme` interface, its registry and model folders.

A scheme is a name, a frozen config (with a stable hash), and four verbs::

    scheme = get_scheme("paper")(levels=16)      # config fields as keywords
    scheme.fit(train, key)                       # train its secret parts (VAE, ...) on a FrameSet
    y = scheme.apply(frames)                     # float32 (N, H, W) -> float32, deterministic
    scheme.save("model/")                        # secret: folder 0700, files 0600, bound to the key
    scheme = load_scheme("model/", key)          # any scheme, by the name its folder records

Everything that obfuscates -- ``medcloak fit`` / ``obfuscate``, the study, and the attackers who
re-run the public algorithm with their own keys (T0, T2, T3) -- goes through this interface, so
a new scheme is one new file plus one line in :data:`BUILTIN` and works everywhere unchanged.

What the cloud's model needs to know about the output is :attr:`Scheme.output`
(``"grey levels"``: an image whose values are ``output_levels`` levels; ``"image"``: a float
image; ``"patch tokens"``: a sequence of patch vectors, one frame's output of shape ``(T, D)``),
its shape (:meth:`Scheme.output_shape`) and whether it stays in [0, 1]
(:attr:`Scheme.output_in_unit_range`).

Model folder: ``scheme.json`` (format, scheme name, config, config hash, key fingerprint, model
fingerprint, an HMAC-SHA256 tag under a key sub-key) plus the scheme's own files. A folder
without ``scheme.json`` but with ``obfuscator.json`` (written before schemes existed) is the
``paper`` scheme. :func:`load_scheme` refuses a folder of another scheme when ``expect`` is given.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from medcloak.errors import MedcloakError

__all__ = ["Scheme", "BUILTIN", "DEFAULT_SCHEME", "DEFAULT_OPTIONS", "DEFAULT_LABEL", "register", "get_scheme",
           "scheme_names", "load_scheme", "make_scheme", "SCHEME_JSON"]

SCHEME_JSON = "scheme.json"
_FORMAT = "medcloak-scheme"
_VERSION = 1
_TAG_LABEL = "scheme-tag"

#: The default setting of ``medcloak fit`` / ``obfuscate`` and of the demo study ([target]). No
#: setting measured meets the target (docs/results/target-search.md); by the rule in the README
#: ("Which scheme?": among settings fitted without labels that meet every privacy bar, the highest
#: view accuracy) this is DP-Pix at 8-px cells with Laplace noise at epsilon 1: the only setting
#: whose strongest attack stayed within the privacy bars, and whose cloud model stayed near chance.
DEFAULT_SCHEME = "pixelate"
DEFAULT_OPTIONS: dict = {"cell": 8, "epsilon": 1.0}
DEFAULT_LABEL = "pixelate b8 eps1"

#: Built-in schemes: name -> "module:Class" (imported on first use, so ``map-only`` never imports torch).
BUILTIN: dict[str, str] = {
    "paper": "medcloak.obfuscation.paper:PaperScheme",
    "blockwise": "medcloak.obfuscation.blockwise:BlockwiseScheme",
    "randenc": "medcloak.obfuscation.randenc:RandEncScheme",
    "pixelate": "medcloak.obfuscation.pixelate:PixelateScheme",
    "blur": "medcloak.obfuscation.blur:BlurScheme",
    "svd": "medcloak.obfuscation.svd:SVDScheme",
    "bottleneck": "medcloak.obfuscation.bottleneck:BottleneckScheme",
}
_REGISTRY: dict[str, type] = {}


def canonical_json(obj) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces): what config hashes and tags are taken of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Scheme:
    """Base class of an obfuscation scheme (see the module docstring).

    Subclasses set :attr:`name`, :attr:`Config` (a frozen dataclass with ``to_dict`` /
    ``from_dict``), :attr:`output`, and implement :meth:`_fit`, :meth:`_apply`, and -- when they
    hold trained state -- :meth:`_save_state` / :meth:`_load_state`.

    Parameters
    ----------
    config : Config, optional
        The scheme's settings; ``None`` means the defaults.
    **fields
        Config fields, as a shortcut for ``Config(**fields)``.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    #: What the cloud's model needs to know about the output.
    output: ClassVar[str] = "grey levels"
    #: True when the trained parts do not depend on the key (one fit serves any key: :meth:`rekey`).
    key_independent_fit: ClassVar[bool] = True
    #: True when fitting needs task labels (the chart marks such schemes).
    uses_labels: ClassVar[bool] = False
    #: False when the output holds real values outside [0, 1] (noise, rotations, random
    #: encoders): only ``--format npy`` can store it (:mod:`.batch` refuses PNG and DICOM).
    output_in_unit_range: ClassVar[bool] = True

    def __init__(self, config=None, **fields):
        if config is not None and fields:
            raise MedcloakError(f"{self.name}: give a config or fields, not both")
        self.config = config if config is not None else self.Config(**fields)
        self.key = None

    # -- identity ------------------------------------------------------------------------------
    @property
    def config_hash(self) -> str:
        """SHA-256 (hex) of the scheme's name and config."""
        return hashlib.sha256(canonical_json({"scheme": self.name, "config": self.config.to_dict()})).hexdigest()

    @property
    def fitted(self) -> bool:
        """True once :meth:`fit` (or :func:`load_scheme`) bound a key and trained what needs training."""
        return self.key is not None

    @property
    def key_fingerprint(self) -> str:
        self._require_fitted()
        return self.key.fingerprint

    @property
    def model_fingerprint(self) -> str:
        """SHA-256 (hex) of the scheme, its config and its trained state (what a manifest records)."""
        self._require_fitted()
        return hashlib.sha256(b"medcloak-scheme-v1\x00" + canonical_json(self.config.to_dict())
                              + b"\x00" + self.name.encode() + b"\x00" + self._state_bytes()).hexdigest()

    @property
    def history(self) -> list[dict]:
        """Per-epoch training history (empty for schemes with nothing to train)."""
        return []

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) the frames must have (the caller resizes them), or ``None`` for any size."""
        return None

    @property
    def output_levels(self) -> int | None:
        """Number of grey levels of the output when it is quantised (public), else ``None``."""
        return None

    @property
    def output_bits(self) -> int:
        """Bits per pixel a PNG of the output needs (8 when it has at most 256 levels)."""
        levels = self.output_levels
        return 8 if levels is not None and levels <= 256 else 16

    @property
    def uses_torch(self) -> bool:
        """True when :meth:`apply` runs a torch network (batch workers then pin one thread)."""
        return False

    def output_shape(self, h: int, w: int) -> tuple[int, ...]:
        """Shape of one frame's output for an (h, w) input (of :attr:`input_size` where it has one).

        Default ``(h, w)``: an image of the input's size. Low-resolution releases and patch
        encoders override it (e.g. ``(T, D)`` patch tokens).
        """
        return (int(h), int(w))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r}, fitted={self.fitted})"

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise MedcloakError(f"scheme {self.name!r} is not fitted: call fit(train, key) or load_scheme()")

    # -- the verbs -----------------------------------------------------------------------------
    def fit(self, train, key, *, val=None, progress: bool = False, **options) -> "Scheme":
        """Bind ``key`` and train the scheme's secret parts on ``train``.

        Parameters
        ----------
        train : FrameSet or ndarray (N, H, W), or None
            The owner's training frames (``None`` for schemes with nothing to train).
        key : medcloak.keys.Key
        val : FrameSet or ndarray, optional
            Validation frames (their curve is in the scheme's history, where it has one).
        progress : bool
            Progress bar on stderr.
        **options
            Scheme-specific (e.g. ``val_target`` for the paper's VAE).

        Returns
        -------
        Scheme
            ``self``, fitted.
        """
        from medcloak.keys import Key

        if not isinstance(key, Key):
            raise MedcloakError(f"{self.name}: fit needs a medcloak.keys.Key")
        if self.uses_labels and (train is None or isinstance(train, np.ndarray)):
            raise MedcloakError(f"scheme {self.name!r} needs task labels: give a FrameSet")
        self.key = key
        self._fit(train, val=val, progress=progress, **options)
        return self

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Obfuscate float frames (H, W) or (N, H, W) in [0, 1]; float32 of the scheme's output shape."""
        self._require_fitted()
        a = np.asarray(frames)
        if a.ndim not in (2, 3):
            raise MedcloakError(f"frames must be (H, W) or (N, H, W), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise MedcloakError("frames must be finite numbers in [0, 1]")
        x = np.clip(a.astype(np.float32, copy=False), 0.0, 1.0)
        out = np.asarray(self._apply(x if x.ndim == 3 else x[None]), np.float32)
        return out if x.ndim == 3 else out[0]

    __call__ = apply

    def apply_codes(self, frames: np.ndarray, *, bits: int = 8) -> np.ndarray:
        """What a ``bits``-bit image file of :meth:`apply`'s output stores: ``to_uint(apply(frames),
        bits)``, uint8 or uint16 (N, ...). A scheme may compute it faster (the paper's keyed map
        looks the integers up directly) but must return the same integers."""
        from medcloak.io.images import to_uint

        return to_uint(self.apply(frames), bits=bits)

    def apply_timed(self, frames: np.ndarray) -> tuple[np.ndarray, dict, dict]:
        """:meth:`apply` with its cost: ``(output, {stage: ms per frame}, {name: intermediate images})``.

        The default has one stage, ``"apply"``, and no intermediates; a scheme made of stages
        (the paper's VAE and map) reports each.
        """
        import time

        t0 = time.perf_counter()
        out = self.apply(frames)
        return out, {"apply": 1e3 * (time.perf_counter() - t0) / max(len(out), 1)}, {}

    def rekey(self, key) -> "Scheme":
        """The same trained parts under another key (the attacker's own keys, key rotation).

        Only for schemes whose training never sees the key (:attr:`key_independent_fit`);
        others must be fitted again.
        """
        self._require_fitted()
        if not self.key_independent_fit:
            raise MedcloakError(f"scheme {self.name!r} trains key-dependent parts: fit it again under the new key")
        other = self._rekeyed(key)
        other.key = key
        return other

    # -- what subclasses implement ---------------------------------------------------------------
    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        """Train on ``train`` (``self.key`` is set). Default: nothing to train."""

    def _apply(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rekeyed(self, key) -> "Scheme":
        """A copy holding the same trained state (default: a fresh instance of the same config)."""
        return type(self)(self.config)

    def _state_bytes(self) -> bytes:
        """Trained state as bytes (default: none)."""
        return b""

    def _save_state(self, directory: Path) -> None:
        """Write trained state into ``directory`` (default: nothing)."""

    def _load_state(self, directory: Path) -> None:
        """Read what :meth:`_save_state` wrote (``self.key`` is set)."""

    # -- persistence ---------------------------------------------------------------------------
    def _tag(self, payload: bytes) -> str:
        return hmac.new(self.key.derive(_TAG_LABEL, 32), payload, hashlib.sha256).hexdigest()

    def _payload(self) -> bytes:
        return canonical_json({"scheme": self.name, "config": self.config.to_dict()}) + b"\x00" + self._state_bytes()

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model folder (secret material: folder mode 0700, files 0600)."""
        from medcloak import __version__
        from medcloak.io.atomic import atomic_write_text

        self._require_fitted()
        d = Path(directory)
        if (d / SCHEME_JSON).exists() and not overwrite:
            raise MedcloakError("already holds a medcloak model; choose another folder", d)
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        except OSError as exc:
            raise MedcloakError(f"cannot create model folder: {exc.strerror}", d) from None
        self._save_state(d)
        doc = {"format": _FORMAT, "version": _VERSION, "medcloak_version": __version__, "scheme": self.name,
               "config": self.config.to_dict(), "config_hash": self.config_hash,
               "key_fingerprint": self.key.fingerprint, "model_fingerprint": self.model_fingerprint,
               "tag": self._tag(self._payload())}
        atomic_write_text(d / SCHEME_JSON, json.dumps(doc, indent=2) + "\n", mode=0o600)
        return d


# ================================================================================= registry


def register(cls: type) -> type:
    """Register a :class:`Scheme` subclass under its ``name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Scheme) and cls.name):
        raise MedcloakError("register() takes a Scheme subclass with a name")
    _REGISTRY[cls.name] = cls
    return cls


def get_scheme(name: str) -> type:
    """The :class:`Scheme` class registered (or built in) under ``name``."""
    if name not in _REGISTRY and name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        register(getattr(importlib.import_module(module), attr))
    if name not in _REGISTRY:
        raise MedcloakError(f"unknown scheme {name!r}; choose from {', '.join(scheme_names())}")
    return _REGISTRY[name]


def scheme_names() -> list[str]:
    """Names of every built-in and registered scheme."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def make_scheme(name: str, config: dict | object | None = None) -> Scheme:
    """An unfitted scheme ``name`` with ``config`` (a Config, a dict of its fields, or None)."""
    cls = get_scheme(name)
    if isinstance(config, dict):
        config = cls.Config.from_dict(config)
    return cls(config)


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MedcloakError(f"unreadable model file ({type(exc).__name__})", path) from None
    if not isinstance(doc, dict):
        raise MedcloakError("not a medcloak model file", path)
    return doc


def load_scheme(directory: str | os.PathLike, key, *, expect: str | None = None) -> Scheme:
    """Read a model folder written by :meth:`Scheme.save` (or by the paper's ``Obfuscator.save``).

    Parameters
    ----------
    directory : path-like
    key : medcloak.keys.Key
        The key the model was fitted under.
    expect : str, optional
        Refuse a folder that holds another scheme.

    Raises
    ------
    MedcloakError
        Not a model folder, another scheme than ``expect``, another key, or modified files.
    """
    d = Path(directory)
    jpath = d / SCHEME_JSON
    if not jpath.exists():
        if (d / "obfuscator.json").exists():  # a paper model saved before schemes existed
            name = "paper"
            if expect not in (None, name):
                raise MedcloakError(f"model folder holds scheme 'paper', not {expect!r}", d)
            scheme = get_scheme(name)._from_legacy(d, key)
            return scheme
        raise MedcloakError(f"not a medcloak model folder (no {SCHEME_JSON})", d)
    doc = _read_json(jpath)
    if doc.get("format") != _FORMAT:
        raise MedcloakError("not a medcloak model file", jpath)
    if doc.get("version") != _VERSION:
        raise MedcloakError(f"unsupported model format version {doc.get('version')!r}", jpath)
    name = str(doc.get("scheme"))
    if expect is not None and name != expect:
        raise MedcloakError(f"model folder holds scheme {name!r}, not {expect!r}", d)
    fp = str(doc.get("key_fingerprint"))
    if fp != key.fingerprint:
        short = ":".join(fp[i: i + 4] for i in range(0, 16, 4))
        raise MedcloakError(f"model was fitted under key {short}, not {key.short_fingerprint}", d)
    config = doc.get("config")
    if not isinstance(config, dict):
        raise MedcloakError("model file has no config object", jpath)
    scheme = make_scheme(name, config)
    scheme.key = key
    scheme._load_state(d)
    if not hmac.compare_digest(scheme._tag(scheme._payload()), str(doc.get("tag"))):
        raise MedcloakError("model files were modified or damaged (authentication tag mismatch)", d)
    return scheme
