"""What one study runs: :class:`StudyConfig`, its presets and its TOML file format.

Presets (:data:`PRESETS`, :func:`preset`):

``tiny``
    32x32, 48 frames (12 patients of 4 frames), VAE and classifier for one epoch, attack networks
    for a handful of steps. For the test suite only: it checks that every stage runs and writes
    every artifact (about 10 s on 2 CPU cores); its numbers mean nothing.
``demo``
    The tool's default setting (:data:`medcloak.obfuscation.scheme.DEFAULT_SCHEME`, DP-Pix at 8-px
    cells with Laplace noise at epsilon 1; ``--scheme paper`` for the paper's), 64x64, 384 frames (48 patients of 8 frames; the patient-wise 70/15/15 % split gives 272 / 64 /
    48 frames, 6 test patients), VAE of 8 epochs, classifier of at most 15 epochs, attack U-Nets
    of 250 steps (T0: at most 500), 256 attacker frames, T1 at 1 / 3 / 10 / 100 pairs, T0 and T4
    over 5 victim keys, one torch thread. Sized to finish in about 5 minutes on 2 CPU cores with
    one victim key (``victim_keys = 1``); scoring T4 under 5 keys with its 8 restarts adds about
    6-13 minutes (T4 on the 384 pooled frames, per key: 85 s with 8 restarts and 33 s without on
    an idle core, 163 s and 58 s on 2 shared cores; issue 14). At 128x128 the attack stage alone would take about 16 minutes
    (measurements: ``docs/results/study-presets.md``).
``paper``
    256x256, 1024 frames, the ``fidelity`` VAE preset (40 epochs; vessel Dice 0.81 at 128 px), classifier up to 50
    epochs, attack U-Nets of (32, 64, 128) channels for 1500 steps (T0 3000), 1024 attacker
    frames, T1 at 1 / 3 / 10 / 100 pairs, T0 and T4 over 5 victim keys. Meant for a GPU (``device = "auto"`` picks CUDA when
    available); on 2 CPU cores it would take many hours.

TOML file (``medcloak study --preset CONFIG.toml``): optional top-level ``base`` (a preset name
the file starts from, default ``demo``) and ``name``, then tables whose keys are the fields below::

    base = "demo"
    [data]
    source = "synthetic"      # or a folder holding labels.csv (relative to the TOML file)
    n_frames = 384
    size = 64
    [attacks]
    threats = ["T0", "T1", "T4"]

Unknown tables or keys and values of the wrong type or range raise
:class:`~medcloak.errors.MedcloakError` naming the key (``attacks.steps``) and the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.obfuscation.scheme import DEFAULT_OPTIONS, DEFAULT_SCHEME

__all__ = ["StudyConfig", "PRESETS", "SECTIONS", "preset", "load_config", "config_hash"]

#: TOML table -> the :class:`StudyConfig` fields it holds (key in the table -> field name).
SECTIONS: dict[str, dict[str, str]] = {
    "data": {"source": "source", "n_frames": "n_frames", "size": "size",
             "frames_per_patient": "frames_per_patient", "seed": "seed"},
    "obfuscation": {"scheme": "scheme", "options": "scheme_options", "levels": "levels", "order": "order",
                    "latent": "latent"},
    "vae": {"preset": "vae_preset", "epochs": "vae_epochs", "base_channels": "vae_channels", "beta": "vae_beta"},
    "utility": {"classifier": "classifier", "classifier_options": "classifier_options", "stenosis": "stenosis_task",
                "max_epochs": "max_epochs", "patience": "patience", "batch_size": "batch_size", "lr": "lr",
                "n_boot": "n_boot"},
    "attacks": {"threats": "threats", "steps": "attack_steps", "t0_steps": "t0_steps", "t1_n": "t1_n",
                "n_attacker": "n_attacker", "channels": "attack_channels", "t0_copies": "t0_copies",
                "t4_all_frames": "t4_all_frames", "lr": "attack_lr", "batch_size": "attack_batch_size",
                "victim_keys": "victim_keys", "t4_restarts": "t4_restarts"},
    "readers": {"frames": "reader_frames"},
    "report": {"figure_frames": "figure_frames", "utility_grid_csv": "utility_grid_csv"},
    "run": {"device": "device", "threads": "threads"},
}
_TOP_LEVEL = ("base", "name")
_THREATS = ("T0", "T1", "T2", "T3", "T4")  # the default: every built-in threat
_ORDERS = ("vae-then-map", "map-then-vae", "map-only")
_CLASSIFIERS = ("small", "wide", "densenet", "vit", "mlp")
_DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class StudyConfig:
    """Settings of one study run (all experiment randomness comes from ``seed``).

    Parameters
    ----------
    name : str
        Label shown in the report (not part of :func:`config_hash`).
    source : str
        ``"synthetic"`` (semi-synthetic frames from :func:`medcloak.synth.generate`) or a folder
        holding ``labels.csv`` (the user's frames: PNG/TIFF/NPY/DICOM; provenance "real").
    n_frames, size, frames_per_patient : int
        Synthetic frames generated, frame side in pixels (user frames are resized to it), frames
        per synthetic patient.
    seed : int
        Generator seed, patient-wise split, recipe and VAE seeds.
    scheme : str
        The obfuscation scheme (:func:`medcloak.obfuscation.scheme.scheme_names`).
    scheme_options : dict
        Config fields of a scheme other than ``paper`` (TOML: an inline table).
    levels, order, latent
        ``paper``: :class:`~medcloak.obfuscation.pipeline.ObfuscationConfig` fields.
    vae_preset : {"fast", "fidelity"}
        The :data:`~medcloak.obfuscation.vae.VAE_PRESETS` setting the VAE starts from.
    vae_epochs, vae_channels, vae_beta
        Its :class:`~medcloak.obfuscation.vae.VAEConfig` ``epochs``, ``base_channels``, ``beta``.
    classifier : {"small", "wide", "densenet", "vit", "mlp"}
        The cloud's classifier family (both sides).
    classifier_options : dict
        Further :class:`~medcloak.learn.models.ClassifierConfig` fields (e.g. ``patch`` of the ViT).
    stenosis_task : bool
        Also train and test both sides on the second task, stenosis present or not (a task that
        needs detail), when the training frames hold both classes.
    max_epochs, patience, batch_size, lr
        The one :class:`~medcloak.learn.recipe.Recipe` of both trainings.
    n_boot : int
        Bootstrap resamples of the test metrics' 95 % CIs.
    threats : tuple of str
        Attacks run (subset of T0-T4; the prior is always scored).
    attack_steps, t0_steps : int
        Optimisation steps of the inverse U-Nets (T1-T3) and the most steps of T0.
    t1_n : tuple of int
        Leaked pairs of the T1 curve (capped at the training frames).
    n_attacker : int
        The attacker's own synthetic angiograms (T0, T2, prior) and cross-domain images (T3).
    attack_channels : tuple of int
        U-Net channels per level of every attack network.
    attack_lr, attack_batch_size : float, int
        Adam learning rate and batch size of every attack network.
    t0_copies : int
        Keys per attacker frame for T0.
    victim_keys : int
        Victim keys T0, its hand-made floor and T4 are scored under (mean and range; the study's
        key and simulated ones, :attr:`medcloak.attacks.runner.AttackConfig.victim_keys`).
    t4_restarts : int
        Searches of T4's level order (``restarts`` of
        :func:`~medcloak.attacks.statistics.ciphertext_only_attack`; 1: the deterministic one only).
    t4_all_frames : bool
        Also run T4 on every obfuscated frame the cloud holds (train, val, test), scored on the
        test frames (the runner's own T4 row pools the test frames only).
    reader_frames : int
        Test frames handed to the expert-reader items (and kept for figures).
    figure_frames : int
        Rows of the sample grid.
    utility_grid_csv : str
        Optional CSV of utility-grid rows (columns ``accuracy``, ``ssim``, ``direct_view_dice``,
        ``config``) drawn as extra points in the privacy-utility chart; "" for none.
    device : {"cpu", "cuda", "auto"}
        Where networks train (``auto``: CUDA when :func:`torch.cuda.is_available`).
    threads : int
        torch CPU threads during the study (0: leave torch's default).
    """

    name: str = "custom"
    source: str = "synthetic"
    n_frames: int = 384
    size: int = 64
    frames_per_patient: int = 8
    seed: int = 0
    scheme: str = "paper"
    scheme_options: dict = field(default_factory=dict)
    levels: int = 256
    order: str = "vae-then-map"
    latent: str = "mean"
    vae_preset: str = "fast"
    vae_epochs: int = 8
    vae_channels: int = 16
    vae_beta: float = 1e-3
    classifier: str = "small"
    classifier_options: dict = field(default_factory=dict)
    stenosis_task: bool = True
    max_epochs: int = 15
    patience: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    n_boot: int = 1000
    threats: tuple[str, ...] = _THREATS
    attack_steps: int = 250
    t0_steps: int = 500
    t1_n: tuple[int, ...] = (1, 3, 10, 100)
    n_attacker: int = 256
    attack_channels: tuple[int, ...] = (16, 32, 64)
    attack_lr: float = 3e-3
    attack_batch_size: int = 16
    t0_copies: int = 2
    t4_all_frames: bool = True
    victim_keys: int = 5
    t4_restarts: int = 8
    reader_frames: int = 12
    figure_frames: int = 6
    utility_grid_csv: str = ""
    device: str = "cpu"
    threads: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, f.type, getattr(self, f.name)))
        _check(self)

    # ------------------------------------------------------------------ derived
    @property
    def synthetic(self) -> bool:
        """True when the frames are generated (semi-synthetic), False for the user's data."""
        return self.source == "synthetic"

    @property
    def setting_label(self) -> str:
        """The obfuscation setting in a few words (figure labels)."""
        if self.scheme == "paper":
            return f"L={self.levels}, {self.order}"
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.scheme_options.items()))
        return self.scheme + (f" ({opts})" if opts else "")

    def classifier_config(self):
        """The cloud's :class:`~medcloak.learn.models.ClassifierConfig` (family + options)."""
        from medcloak.learn.models import ClassifierConfig

        try:
            return ClassifierConfig(model=self.classifier, **self.classifier_options)
        except TypeError as exc:
            raise MedcloakError(f"'utility.classifier_options': {exc}") from None

    def scheme_config(self):
        """The scheme's config object (the paper's VAE settings from the ``[vae]`` table)."""
        from dataclasses import replace as _replace

        from medcloak.obfuscation.scheme import get_scheme

        if self.scheme != "paper":
            return get_scheme(self.scheme).Config.from_dict(self.scheme_options)
        from medcloak.obfuscation.pipeline import ObfuscationConfig
        from medcloak.obfuscation.vae import vae_preset

        vae = None
        if self.order != "map-only":
            vae = _replace(vae_preset(self.vae_preset), epochs=self.vae_epochs, base_channels=self.vae_channels,
                           beta=self.vae_beta, seed=self.seed)
        return ObfuscationConfig(levels=self.levels, order=self.order, latent=self.latent, image_size=self.size,
                                 vae=vae)

    @property
    def provenance(self) -> str:
        """``"semi-synthetic"`` or ``"real"``."""
        return "semi-synthetic" if self.synthetic else "real"

    def to_dict(self) -> dict:
        """JSON-serialisable dict of all fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_toml(self) -> str:
        """The config as a TOML file :func:`load_config` reads back to an equal config."""
        d = self.to_dict()
        lines = [f"name = {json.dumps(self.name)}"]
        for section, keys in SECTIONS.items():
            lines.append(f"\n[{section}]")
            for key, field_name in keys.items():
                lines.append(f"{key} = {_toml_value(d[field_name])}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ validation


def _toml_value(v) -> str:
    """A TOML value: JSON for scalars and lists, an inline table for dicts."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def _type_name(tp) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


def _coerce(name: str, tp, value):
    """Check one field's type (annotations are strings under ``from __future__``)."""
    t = _type_name(tp)
    where = _key_of(name)
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise MedcloakError(f"'{where}' must be an integer, got {value!r}")
        return int(value)
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MedcloakError(f"'{where}' must be a number, got {value!r}")
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise MedcloakError(f"'{where}' must be a string, got {value!r}")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise MedcloakError(f"'{where}' must be true or false, got {value!r}")
        return value
    if t.startswith("tuple[int"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise MedcloakError(f"'{where}' must be a list of integers, got {value!r}")
        items = list(value)
        if not items or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            raise MedcloakError(f"'{where}' must be a non-empty list of integers, got {value!r}")
        return tuple(int(v) for v in items)
    if t.startswith("dict"):
        if not isinstance(value, dict) or any(not isinstance(k, str) for k in value):
            raise MedcloakError(f"'{where}' must be a table of settings, got {value!r}")
        return dict(value)
    if t.startswith("tuple[str"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise MedcloakError(f"'{where}' must be a list of strings, got {value!r}")
        items = list(value)
        if any(not isinstance(v, str) for v in items):
            raise MedcloakError(f"'{where}' must be a list of strings, got {value!r}")
        return tuple(items)
    raise AssertionError(f"unhandled field type {t} of {name}")  # pragma: no cover


def _key_of(field_name: str) -> str:
    """The TOML key (``table.key``) of a field, for messages."""
    for section, keys in SECTIONS.items():
        for key, f in keys.items():
            if f == field_name:
                return f"{section}.{key}"
    return field_name


def _check(c: StudyConfig) -> None:
    def bad(field_name: str, rule: str) -> MedcloakError:
        return MedcloakError(f"'{_key_of(field_name)}' {rule}, got {getattr(c, field_name)!r}")

    for f in ("n_frames", "frames_per_patient", "vae_epochs", "vae_channels", "max_epochs", "patience",
              "batch_size", "attack_steps", "t0_steps", "n_attacker", "t0_copies", "reader_frames",
              "figure_frames", "victim_keys", "t4_restarts"):
        if getattr(c, f) < 1:
            raise bad(f, "must be >= 1")
    if c.seed < 0:
        raise bad("seed", "must be >= 0")
    if c.threads < 0:
        raise bad("threads", "must be >= 0")
    if c.n_boot < 10:
        raise bad("n_boot", "must be >= 10")
    if c.size < 16 or c.size % 8:
        raise bad("size", "must be a multiple of 8, at least 16")
    if c.source == "synthetic" and c.n_frames < 4 * c.frames_per_patient:
        raise MedcloakError(f"'data.n_frames' must give at least 4 patients per study "
                            f"(>= 4 x frames_per_patient = {4 * c.frames_per_patient}), got {c.n_frames}")
    if not 2 <= c.levels <= 65536:
        raise bad("levels", "must be in 2..65536")
    if c.order not in _ORDERS:
        raise bad("order", f"must be one of {', '.join(_ORDERS)}")
    if c.latent not in ("mean", "sampled"):
        raise bad("latent", "must be 'mean' or 'sampled'")
    if c.vae_beta < 0:
        raise bad("vae_beta", "must be >= 0")
    if c.lr <= 0:
        raise bad("lr", "must be > 0")
    if c.attack_lr <= 0 or c.attack_batch_size < 1:
        raise bad("attack_lr" if c.attack_lr <= 0 else "attack_batch_size", "must be positive")
    from medcloak.obfuscation.scheme import get_scheme

    get_scheme(c.scheme)  # an unknown scheme raises, naming the known ones
    if c.scheme != "paper":
        c.scheme_config()  # unknown or bad options raise here, not in a later stage
    from medcloak.obfuscation.vae import VAE_PRESETS

    if c.vae_preset not in VAE_PRESETS:
        raise bad("vae_preset", f"must be one of {', '.join(VAE_PRESETS)}")
    if c.classifier not in _CLASSIFIERS:
        raise bad("classifier", f"must be one of {', '.join(_CLASSIFIERS)}")
    c.classifier_config()  # bad classifier options raise here, naming the field
    from medcloak.attacks.base import attack_names

    known = attack_names()
    unknown = [t for t in c.threats if t not in known]
    if unknown or len(set(c.threats)) != len(c.threats):
        raise bad("threats", f"must be distinct names among {', '.join(known)}")
    if min(c.t1_n) < 1:
        raise bad("t1_n", "must hold numbers of pairs >= 1")
    if len(c.attack_channels) < 2 or min(c.attack_channels) < 1:
        raise bad("attack_channels", "must hold at least two positive channel counts")
    if c.size % (2 ** (len(c.attack_channels) - 1)):
        raise bad("attack_channels", f"has too many levels for {c.size}-pixel frames")
    if c.device not in _DEVICES:
        raise bad("device", f"must be one of {', '.join(_DEVICES)}")


# ------------------------------------------------------------------ presets

_TINY = StudyConfig(
    name="tiny", n_frames=48, size=32, frames_per_patient=4, vae_epochs=1, vae_channels=8, max_epochs=1,
    patience=1, batch_size=16, n_boot=50, attack_steps=4, t0_steps=4, t1_n=(4, 16), n_attacker=32,
    attack_channels=(8, 16), t0_copies=1, victim_keys=2, t4_restarts=2, reader_frames=4, figure_frames=3, threads=1,
)
# the demo study obfuscates with the tool's default setting ([target]; README "The verdict");
# `--scheme paper` (or [obfuscation] scheme = "paper") runs the paper's
_DEMO = StudyConfig(name="demo", threads=1, scheme=DEFAULT_SCHEME, scheme_options=dict(DEFAULT_OPTIONS))
_PAPER = StudyConfig(
    name="paper", n_frames=1024, size=256, vae_preset="fidelity", vae_epochs=40, max_epochs=50, patience=12, attack_steps=1500,
    t0_steps=3000, t1_n=(1, 3, 10, 100), n_attacker=1024, attack_channels=(32, 64, 128), t0_copies=4,
    reader_frames=24, device="auto",
)

#: The presets by name.
PRESETS: dict[str, StudyConfig] = {"tiny": _TINY, "demo": _DEMO, "paper": _PAPER}


def preset(name: str) -> StudyConfig:
    """The preset ``name`` (``tiny``, ``demo`` or ``paper``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise MedcloakError(f"unknown preset {name!r}; choose {', '.join(PRESETS)} or a .toml file") from None


def load_config(preset_or_path: str | os.PathLike) -> StudyConfig:
    """A preset by name, or a TOML config file (see the module docstring).

    Parameters
    ----------
    preset_or_path : str or path-like
        ``"tiny"``, ``"demo"``, ``"paper"``, or the path of a ``.toml`` file.

    Returns
    -------
    StudyConfig
        For a file: its ``base`` preset with the file's keys applied; a relative ``data.source``
        folder is resolved against the file's folder; ``name`` defaults to the file's stem.

    Raises
    ------
    MedcloakError
        Unknown preset, unreadable file, TOML syntax error, unknown table or key, bad value
        (each message names the key and the file).
    """
    text = os.fspath(preset_or_path)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if not path.suffix == ".toml" and not path.is_file():
        raise MedcloakError(f"unknown preset {text!r}; choose {', '.join(PRESETS)} or a .toml file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedcloakError("config file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MedcloakError(f"cannot read config file ({type(exc).__name__})", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise MedcloakError(f"not valid TOML: {exc}", path) from None
    base_name = doc.get("base", "demo")
    if not isinstance(base_name, str) or base_name not in PRESETS:
        raise MedcloakError(f"'base' must be one of {', '.join(PRESETS)}, got {base_name!r}", path)
    changes: dict = {"name": doc.get("name", path.stem)}
    for top, value in doc.items():
        if top in _TOP_LEVEL:
            continue
        if top not in SECTIONS:
            raise MedcloakError(f"unknown key '{top}' (tables: {', '.join(SECTIONS)}; top-level keys: "
                                f"{', '.join(_TOP_LEVEL)})", path)
        if not isinstance(value, dict):
            raise MedcloakError(f"'{top}' must be a table ([{top}])", path)
        for key, v in value.items():
            if key not in SECTIONS[top]:
                raise MedcloakError(f"unknown key '{top}.{key}' (known in [{top}]: "
                                    f"{', '.join(SECTIONS[top])})", path)
            changes[SECTIONS[top][key]] = v
    source = changes.get("source")
    if isinstance(source, str) and source != "synthetic" and not Path(source).is_absolute():
        changes["source"] = str((path.parent / source).resolve())
    try:
        return replace(PRESETS[base_name], **changes)
    except MedcloakError as exc:
        raise MedcloakError(exc.reason, path) from None


def config_hash(config: StudyConfig) -> str:
    """SHA-256 (hex) of the config's canonical JSON, ``name`` excluded (it changes no result)."""
    d = config.to_dict()
    d.pop("name", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
