"""The :class:`Obfuscator`: the one object the CLI, the batch runner and the study use.

It wraps the two stages, Opacus-style::

    key = Key.load("hospital.key")
    obf = Obfuscator(key, config=ObfuscationConfig(image_size=128))
    history = obf.fit(train_frames, val_frames)      # trains the VAE (secret, like the key)
    y = obf.obfuscate(frames)                        # float32 (N, H, W) in [0, 1]
    obf.save("model/")                               # mode 0700 / 0600, bound to the key
    obf = Obfuscator.load("model/", key)

Orders (``ObfuscationConfig.order``):

``"vae-then-map"`` (default)
    VAE reconstruction -> quantise to ``levels`` -> keyed look-up table. The table is the last
    step so the output takes exactly the table's values (a non-bijective set of at most
    ``levels`` grey levels) and the VAE never sees key-dependent input: one VAE serves any key
    rotation of the table, and the cloud sees no smooth VAE output that could be compared to
    originals.
``"map-then-vae"``
    quantise -> table -> VAE reconstruction (the VAE is fitted on mapped frames of this key).
``"map-only"``
    quantise -> table, no VAE (a weaker variant, used by the attack study and by
    ``medcloak obfuscate`` without ``--model``).

Determinism: the result depends only on (key, config, model, frame). The VAE runs on one frame
at a time, on a channels-last copy of the model: batched CPU convolutions differ by ~6e-8 in a
few per cent of pixels from batch size 1 (enough to flip a quantisation level), and on one CPU
thread batching is also slower per frame than batch size 1, while the channels-last layout halves
the time per frame at 256 px (``benchmarks/obfuscation_throughput.py`` measures both). The
sampled latent noise is
``key.normal("vae-latent-noise", latent_shape, context=sha256(frame float32 bytes))``.
Outputs are bit-identical for a fixed CPU instruction set and torch thread count (the batch
runner fixes one thread per process). A loaded model runs the same network rebuilt in plain torch
(:mod:`medcloak.obfuscation.vae_inference`: same parameters and operations, same bits, no MONAI
import); the inference engine is therefore unchanged (torch eager, channels-last, batch 1), and
a model of the default engine (``engine="fp32"``) has the fingerprint it had before engines existed.

Engines (``ObfuscationConfig.engine``): ``"fp32"``, the canonical one above, and ``"bf16"``, the same
network with weights and activations in bfloat16 (torch eager, channels-last, batch 1; oneDNN's
bf16 kernels). bf16 changes the arithmetic: its VAE outputs differ from fp32's by up to ~2e-3, which
moves most pixels by a quantisation level and, through the keyed map, gives different output
images. So the engine is part of the config, hence of the model fingerprint (an ``"engine"`` field,
written only when it is not ``fp32``), and recorded in every manifest line: an output folder made
with one engine refuses to be resumed with the other, and a medcloak version without engines
refuses to load a bf16 model (unknown config field). Speed: 2.8x fp32's per 256 px frame on one
thread of a CPU with AVX512-BF16 (AMD EPYC, 2026-12-01); on a CPU without native bf16 it may be
slower than fp32. bf16 outputs are bit-identical for a fixed CPU instruction set and thread count,
like fp32's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes, atomic_write_text
from medcloak.keys import Key
from medcloak.obfuscation.mapping import IntensityMap

__all__ = ["ObfuscationConfig", "Obfuscator", "ORDERS", "LATENTS", "ENGINES", "MODEL_JSON", "MODEL_VAE"]

ORDERS = ("vae-then-map", "map-then-vae", "map-only")
LATENTS = ("mean", "sampled")
ENGINES = ("fp32", "bf16")  #: VAE inference engines; the first is the default (see the module docstring)
MODEL_JSON = "obfuscator.json"
MODEL_VAE = "vae.pt"
_MODEL_FORMAT = "medcloak-obfuscator"
_MODEL_VERSION = 1
NOISE_LABEL = "vae-latent-noise"
TAG_LABEL = "model-tag"


@dataclass(frozen=True)
class ObfuscationConfig:
    """Settings of the obfuscation.

    Parameters
    ----------
    levels : int
        Quantisation levels ``L`` before the look-up table (2..65536).
    out_levels : int, optional
        Output levels of the table (default ``levels``).
    order : {"vae-then-map", "map-then-vae", "map-only"}
        Order of the stages (see the module docstring).
    latent : {"mean", "sampled"}
        Decode the posterior mean, or ``mu + sigma * noise`` with key-derived noise.
    image_size : int, optional
        Side of the square frames the VAE works on (frames are resized to it by the caller).
        ``None``: taken from the training frames at :meth:`Obfuscator.fit`. Ignored by
        ``map-only``, which takes frames of any size.
    vae : VAEConfig, optional
        VAE hyper-parameters (:mod:`medcloak.obfuscation.vae`); ``None`` means the VAE's
        defaults (filled in here), except for ``map-only``, where it stays ``None`` so that a
        map-only obfuscator never imports torch.
    engine : {"fp32", "bf16"}
        The VAE's inference engine (module docstring): ``bf16`` is faster on CPUs with native
        bfloat16 and gives other outputs. Training always runs in float32. Only with a VAE.
    """

    levels: int = 256
    out_levels: int | None = None
    order: str = "vae-then-map"
    latent: str = "mean"
    image_size: int | None = None
    vae: object = None
    engine: str = "fp32"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise MedcloakError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.latent not in LATENTS:
            raise MedcloakError(f"latent must be one of {', '.join(LATENTS)}, got {self.latent!r}")
        if self.engine not in ENGINES:
            raise MedcloakError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine != ENGINES[0] and self.order == "map-only":
            raise MedcloakError(f"engine {self.engine} is the VAE's; map-only has no VAE")
        if self.image_size is not None and int(self.image_size) < 1:
            raise MedcloakError(f"image_size must be positive, got {self.image_size}")
        from medcloak.obfuscation.mapping import check_levels

        check_levels(self.levels, self.out_levels)
        if self.vae is None and self.order != "map-only":
            from medcloak.obfuscation.vae_config import VAEConfig

            object.__setattr__(self, "vae", VAEConfig())

    @property
    def uses_vae(self) -> bool:
        """False for ``map-only``."""
        return self.order != "map-only"

    @property
    def resolved_out_levels(self) -> int:
        """``out_levels``, or ``levels`` when unset."""
        return int(self.levels if self.out_levels is None else self.out_levels)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (the VAE config nested under ``"vae"``; ``engine`` only when it
        is not the default, so that fp32 models keep the fingerprints they had before engines)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("vae", "engine")}
        d["vae"] = None if self.vae is None else self.vae.to_dict()
        if self.engine != ENGINES[0]:
            d["engine"] = self.engine
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ObfuscationConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`MedcloakError`."""
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MedcloakError(f"obfuscation config: unknown field(s) {', '.join(unknown)}")
        if d.get("vae") is not None:
            from medcloak.obfuscation.vae_config import VAEConfig

            d["vae"] = VAEConfig.from_dict(d["vae"])
        return cls(**d)


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _frame_context(frame: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(frame, dtype="<f4").tobytes()).digest()


def _clipped(frames, ndims: tuple[int, ...]) -> np.ndarray:
    """``frames`` as float32 clipped to [0, 1], after checking their number of axes (``ndims``:
    2 for (H, W), 3 for (N, H, W)) and that they are finite numbers."""
    a = np.asarray(frames)
    if a.ndim not in ndims:
        shapes = " or ".join({2: "(H, W)", 3: "(N, H, W)"}[n] for n in ndims)
        raise MedcloakError(f"frames must be {shapes}, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise MedcloakError("frames must be finite numbers in [0, 1]")
    return np.clip(a.astype(np.float32, copy=False), 0.0, 1.0)


class Obfuscator:
    """Keyed obfuscation: VAE + keyed random non-bijective intensity mapping.

    Parameters
    ----------
    key : medcloak.keys.Key
        The owner's secret key. The look-up table and latent noise are derived from it.
    config : ObfuscationConfig
        Settings; see :class:`ObfuscationConfig`.
    """

    def __init__(self, key: Key, *, config: ObfuscationConfig | None = None):
        if not isinstance(key, Key):
            raise MedcloakError("Obfuscator needs a medcloak.keys.Key")
        self.key = key
        self.config = config or ObfuscationConfig()
        self.mapping = IntensityMap.from_key(key, levels=self.config.levels, out_levels=self.config.out_levels)
        self._model = None
        self.history: list[dict] = []
        self._vae_bytes: bytes | None = None
        self._fast: tuple | None = None  # (its source, the channels-last inference network)

    @property
    def model(self):
        """The fitted :class:`~medcloak.obfuscation.vae.VAE` (``None`` for ``map-only``).

        A loaded model folder keeps only the VAE's bytes; the MONAI-built network is made from
        them on first access here. Obfuscating does not need it: it runs the same network in
        plain torch (:mod:`medcloak.obfuscation.vae_inference`), so a batch worker never
        imports MONAI and the main process of ``medcloak obfuscate`` never imports torch.
        """
        if self._model is None and self._vae_bytes is not None:
            from medcloak.obfuscation.vae import vae_from_bytes

            self._model = vae_from_bytes(self._vae_bytes)
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    # -- identity ---------------------------------------------------------------------------
    @property
    def key_fingerprint(self) -> str:
        """Fingerprint of the key the obfuscator works under."""
        return self.key.fingerprint

    @property
    def fitted(self) -> bool:
        """True when the obfuscator can obfuscate (``map-only``, or a VAE is fitted/loaded)."""
        return not self.config.uses_vae or self._model is not None or self._vae_bytes is not None

    @property
    def model_fingerprint(self) -> str:
        """SHA-256 (hex) of the saved model bytes: config JSON and VAE weights (if any)."""
        return hashlib.sha256(self._model_payload()).hexdigest()

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) the frames must have, or ``None`` when any size is accepted (``map-only``)."""
        if not self.config.uses_vae or self.config.image_size is None:
            return None
        s = int(self.config.image_size)
        return (s, s)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Obfuscator(key={self.key!r}, order={c.order!r}, latent={c.latent!r}, levels={c.levels}, "
            f"out_levels={c.resolved_out_levels}, image_size={c.image_size}, fitted={self.fitted})"
        )

    def _model_payload(self) -> bytes:
        self._require_fitted()
        body = b"medcloak-model-v1\x00" + _canonical(self.config.to_dict()) + b"\x00"
        return body + (self._vae_bytes or b"")

    def with_options(self, **changes) -> "Obfuscator":
        """A new obfuscator under the same key sharing this fitted VAE, with other ``latent``,
        ``levels``, ``out_levels`` or ``engine`` (settings that do not change what the VAE learned;
        another engine gives another model fingerprint).

        Raises
        ------
        MedcloakError
            For any other field, or on a ``map-then-vae`` obfuscator (its VAE learned mapped frames).
        """
        allowed = {"latent", "levels", "out_levels", "engine"}
        if set(changes) - allowed:
            raise MedcloakError(f"with_options changes only {', '.join(sorted(allowed))}, not "
                                f"{', '.join(sorted(set(changes) - allowed))}")
        if self.config.order == "map-then-vae" and {"levels", "out_levels"} & set(changes):
            raise MedcloakError("a map-then-vae VAE learned frames mapped at these levels; fit a new one")
        other = Obfuscator(self.key, config=replace(self.config, **changes))
        other._model, other._vae_bytes, other.history = self._model, self._vae_bytes, self.history
        return other

    def with_key(self, key: Key) -> "Obfuscator":
        """The same fitted VAE under another key (its own table and latent noise).

        Raises
        ------
        MedcloakError
            On a ``map-then-vae`` obfuscator (its VAE learned frames mapped under this key).
        """
        if self.config.order == "map-then-vae":
            raise MedcloakError("a map-then-vae VAE learned frames mapped under its key; fit a new one")
        other = Obfuscator(key, config=self.config)
        other._model, other._vae_bytes, other.history = self._model, self._vae_bytes, self.history
        return other

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise MedcloakError("the obfuscator has no VAE yet: call fit() or Obfuscator.load() a model folder")

    # -- fitting -----------------------------------------------------------------------------
    def fit(
        self,
        frames: np.ndarray,
        val_frames: np.ndarray | None = None,
        *,
        val_target: np.ndarray | None = None,
        progress: bool = True,
        callback=None,
    ) -> list[dict]:
        """Fit the VAE on the owner's frames (no-op for ``map-only``).

        Parameters
        ----------
        frames : ndarray, float32 (N, H, W) in [0, 1]
            Training frames, already resized to ``config.image_size`` (if set).
        val_frames : ndarray (M, H, W), optional
            Validation frames (their SSIM per epoch is in the history).
        val_target : ndarray (M, H, W), optional
            What validation reconstructions are compared to (default ``val_frames``).
        progress : bool
            tqdm bar over epochs on stderr.
        callback : callable, optional
            Called with each epoch's history row.

        Returns
        -------
        list of dict
            The VAE's per-epoch history (see :func:`medcloak.obfuscation.vae.train_vae`);
            empty for ``map-only``.
        """
        if not self.config.uses_vae:
            self.history = []
            return []
        from medcloak.obfuscation.vae import VAEConfig, train_vae, vae_to_bytes

        if self.config.vae is None:
            self.config = replace(self.config, vae=VAEConfig())
        frames = self._check_stack(frames, "training frames")
        size = frames.shape[1]
        if frames.shape[1] != frames.shape[2]:
            raise MedcloakError(f"training frames must be square (resize them), got {frames.shape[1:]}")
        if self.config.image_size is None:
            self.config = replace(self.config, image_size=int(size))
        if val_frames is not None:
            val_frames = self._check_stack(val_frames, "validation frames")
        if self.config.order == "map-then-vae":
            frames = self.mapping(frames)
            val_frames = None if val_frames is None else self.mapping(val_frames)
            val_target = None if val_target is None else self.mapping(np.asarray(val_target, np.float32))
        model, history = train_vae(
            frames, val_frames, self.config.vae, val_target=val_target, progress=progress, callback=callback
        )
        self._vae_bytes = vae_to_bytes(model)
        self.model = model
        self.history = history
        return history

    def _check_stack(self, frames, what: str) -> np.ndarray:
        a = np.asarray(frames, dtype=np.float32)
        if a.ndim != 3 or a.shape[0] == 0:
            raise MedcloakError(f"{what}: expected a non-empty (N, H, W) stack, got shape {a.shape}")
        size = self.input_size
        if size is not None and a.shape[1:] != size:
            raise MedcloakError(
                f"{what}: frames are {a.shape[1]}x{a.shape[2]} but the obfuscator works on "
                f"{size[0]}x{size[1]} (resize them first)"
            )
        return a

    # -- obfuscation ---------------------------------------------------------------------------
    def vae_stage(self, frames: np.ndarray) -> np.ndarray:
        """The VAE reconstruction alone (mean or key-sampled latent), frame by frame.

        ``frames`` float32 (N, H, W) in [0, 1]; returns float32 (N, H, W) in [0, 1]. The sampled
        latent's noise is derived from the key and the SHA-256 of each frame's float32 bytes.
        """
        self._require_fitted()
        if self._model is None and self._vae_bytes is None:
            raise MedcloakError("map-only obfuscator has no VAE stage")
        x = self._check_stack(frames, "frames")
        return self._vae(x, x)

    def _inference_model(self):
        """The channels-last network obfuscation runs, made once per model: a copy of
        ``self.model`` when one was fitted or set here, else the plain-torch
        :class:`~medcloak.obfuscation.vae_inference.InferenceVAE` of the saved bytes (same
        parameters, same operations, same bits; no MONAI import)."""
        source = self._model if self._model is not None else self._vae_bytes
        if self._fast is None or self._fast[0] is not source:
            import torch

            if self._model is not None:
                import copy

                net = copy.deepcopy(self._model).eval()
            else:
                from medcloak.obfuscation.vae_inference import inference_vae_from_bytes

                net = inference_vae_from_bytes(self._vae_bytes)
            net = net.to(memory_format=torch.channels_last)
            if self.config.engine == "bf16":
                net = net.to(torch.bfloat16)
            self._fast = (source, net)
        return self._fast[1]

    def _vae(self, x: np.ndarray, context_frames: np.ndarray) -> np.ndarray:
        """VAE of every frame of ``x`` (one frame per forward pass: the result of a frame does
        not depend on its batch mates); latent noise keyed by ``context_frames[i]``."""
        from medcloak.obfuscation.vae import latent_shape, reconstruct

        noise = None
        if self.config.latent == "sampled":
            shape = latent_shape(self._inference_model().config, x.shape[1], x.shape[2])
            noise = np.stack([self.key.normal(NOISE_LABEL, shape, context=_frame_context(f)) for f in context_frames])
        return reconstruct(self._inference_model(), x, noise=noise, batch_size=1, channels_last=True)

    def obfuscate(self, frames: np.ndarray) -> np.ndarray:
        """Obfuscate frames.

        Parameters
        ----------
        frames : ndarray, float (H, W) or (N, H, W) in [0, 1]
            Values outside [0, 1] are clipped. With a VAE, frames must be
            ``image_size x image_size``.

        Returns
        -------
        ndarray, float32, same shape, in [0, 1]
            Deterministic for (key, config, model, frame); for ``vae-then-map`` and ``map-only``
            every value is one of the table's output levels ``k / (out_levels - 1)``.
        """
        self._require_fitted()
        x = _clipped(frames, (2, 3))
        stack = x if x.ndim == 3 else x[None]
        order = self.config.order
        if order == "map-only":
            out = self.mapping(stack)
        elif order == "vae-then-map":
            out = self.mapping(self.vae_stage(stack))
        else:  # map-then-vae: noise context is the input frame, not the mapped one
            out = self._vae(self.mapping(self._check_stack(stack, "frames")), stack)
        out = out.astype(np.float32, copy=False)
        return out if x.ndim == 3 else out[0]

    __call__ = obfuscate

    def obfuscate_codes(self, frames: np.ndarray, *, bits: int = 8) -> np.ndarray:
        """``to_uint(self.obfuscate(frames), bits)`` (what a ``bits``-bit PNG of the output stores),
        computed without the float32 output for ``map-only`` and ``vae-then-map``
        (:meth:`IntensityMap.codes`); the same integers, so the same files.

        Parameters
        ----------
        frames : ndarray, float (N, H, W) in [0, 1]
        bits : {8, 16}

        Returns
        -------
        ndarray, uint8 (``bits=8``) or uint16 (N, H, W)
        """
        from medcloak.io.images import to_uint

        self._require_fitted()
        order = self.config.order
        if order == "map-then-vae":
            return to_uint(self.obfuscate(frames), bits=bits)
        x = _clipped(frames, (3,))
        if order == "vae-then-map":
            x = self.vae_stage(x)
        return self.mapping.codes(x, bits=bits)

    # -- persistence ---------------------------------------------------------------------------
    def _tag(self, payload: bytes) -> str:
        return hmac.new(self.key.derive(TAG_LABEL, 32), payload, hashlib.sha256).hexdigest()

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model folder (secret material: folder mode 0700, files 0600).

        Files: ``obfuscator.json`` (config, key fingerprint, model fingerprint, training
        history, an HMAC-SHA256 tag under a key-derived sub-key) and ``vae.pt`` (VAE bytes;
        absent for ``map-only``). Refuses to replace an existing model unless ``overwrite``.
        """
        from medcloak import __version__

        self._require_fitted()
        d = Path(directory)
        if (d / MODEL_JSON).exists() and not overwrite:
            raise MedcloakError("already holds a medcloak model; choose another folder", d)
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        except OSError as exc:
            raise MedcloakError(f"cannot create model folder: {exc.strerror}", d) from None
        payload = self._model_payload()
        doc = {
            "format": _MODEL_FORMAT,
            "version": _MODEL_VERSION,
            "medcloak_version": __version__,
            "key_fingerprint": self.key.fingerprint,
            "model_fingerprint": hashlib.sha256(payload).hexdigest(),
            "config": self.config.to_dict(),
            "vae_file": MODEL_VAE if self._vae_bytes is not None else None,
            "vae_sha256": None if self._vae_bytes is None else hashlib.sha256(self._vae_bytes).hexdigest(),
            "history": self.history,
            "tag": self._tag(payload),
        }
        if self._vae_bytes is not None:
            atomic_write_bytes(d / MODEL_VAE, self._vae_bytes, mode=0o600)
        atomic_write_text(d / MODEL_JSON, json.dumps(doc, indent=2, allow_nan=True) + "\n", mode=0o600)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike, key: Key) -> "Obfuscator":
        """Read a model folder written by :meth:`save` under the same key.

        Raises
        ------
        MedcloakError
            If the folder is not a medcloak model, was fitted under another key
            ("model was fitted under key <fp>, not <fp>"), or its files were modified.
        """
        from medcloak.io.limits import MAX_MODEL_FILE_BYTES, read_capped

        d = Path(directory)
        jpath = d / MODEL_JSON
        if not jpath.exists():
            raise MedcloakError(f"not a medcloak model folder (no {MODEL_JSON})", d)
        try:
            doc = json.loads(read_capped(jpath, 16 << 20).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MedcloakError(f"unreadable model file ({type(exc).__name__})", jpath) from None
        if not isinstance(doc, dict) or doc.get("format") != _MODEL_FORMAT:
            raise MedcloakError("not a medcloak model file", jpath)
        if doc.get("version") != _MODEL_VERSION:
            raise MedcloakError(f"unsupported model format version {doc.get('version')!r}", jpath)
        fp = str(doc.get("key_fingerprint"))
        if fp != key.fingerprint:
            short = ":".join(fp[i : i + 4] for i in range(0, 16, 4))
            raise MedcloakError(f"model was fitted under key {short}, not {key.short_fingerprint}", d)
        raw_config = doc.get("config") or {}
        if not isinstance(raw_config, dict):
            raise MedcloakError(f"model file is damaged ('config' is a {type(raw_config).__name__}, not an object)",
                                jpath)
        try:
            config = ObfuscationConfig.from_dict(raw_config)
        except MedcloakError:
            raise
        except Exception as exc:  # noqa: BLE001 - any malformed field
            raise MedcloakError(f"model file is damaged (bad 'config': {type(exc).__name__}: {exc})", jpath) from None
        obf = cls(key, config=config)
        if doc.get("vae_file"):
            vae_name = str(doc["vae_file"])
            vae_path = d / vae_name
            if Path(vae_name).is_absolute() or ".." in Path(vae_name).parts or "/" in vae_name:
                raise MedcloakError(f"model file names a VAE file outside its folder ({vae_name!r})", jpath)
            # the JSON's format, version and key were checked above; the weights are read capped
            obf._vae_bytes = read_capped(vae_path, MAX_MODEL_FILE_BYTES)
        elif config.uses_vae:
            raise MedcloakError("model file names no VAE but its order needs one", jpath)
        payload = b"medcloak-model-v1\x00" + _canonical(config.to_dict()) + b"\x00" + (obf._vae_bytes or b"")
        if not hmac.compare_digest(obf._tag(payload), str(doc.get("tag"))):
            raise MedcloakError("model files were modified or damaged (authentication tag mismatch)", d)
        obf.history = list(doc.get("history") or [])
        return obf
