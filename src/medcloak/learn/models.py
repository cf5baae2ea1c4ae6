"""The cloud's classifier: a standard CNN trained from scratch, and its model file.

Architectures (``ClassifierConfig.model``):

``"small"`` / ``"wide"``
    A plain VGG-like CNN: four stages of two 3x3 convolutions (MONAI ``Convolution`` blocks:
    conv -> group norm (8 groups) -> ReLU), 2x2 max-pooling between stages, global average
    pooling, dropout and one linear output. ``small`` has 16-32-64-128 channels (about 0.29 M parameters),
    ``wide`` 32-64-128-256 (about 1.2 M). Fully convolutional, so any frame size >= 8 px works.
``"densenet"``
    MONAI's ``DenseNet`` (2-D) configured small: 16 initial features, growth 16, blocks (4, 4, 4),
    group norm (4 groups).
``"vit"``
    :class:`~medcloak.learn.vit.PatchViT`: patches of ``patch`` px (or ready-made patch tokens,
    ``tokens=True``), a linear patch embedding, a learned position embedding (``position``),
    ``depth`` pre-norm transformer layers, mean pooling. For block-wise schemes (patch = block)
    and random patch encoders (tokens, ``position="none"``).
``"mlp"``
    :class:`~medcloak.learn.vit.MLP`: for low-resolution releases (cell-mean grids).

The CNN families see frames clipped to [0, 1]; ``vit`` and ``mlp`` take real-valued inputs as
they are (schemes such as ``svd`` release real numbers) and need ``input_shape`` (filled in from
the training data by :func:`medcloak.learn.train.train_classifier`).

Normalisation is group norm, not batch norm: measured on a separable 16x16 toy set (64 training
frames, batch 16), a batch-norm network reached training accuracy 1.0 while its validation
accuracy in eval mode stayed at 0.50 for 8 epochs (running statistics lag the weights early in
training), long enough to trip early stopping; the group-norm network was at 1.0 from epoch 1.
Group norm has no train/eval difference, so validation curves are honest from the first epoch.

Input modes (``ClassifierConfig.input_mode``):

``"intensity"`` (default)
    The frame's grey values ``x`` in [0, 1] go in as one channel (scaled to ``2x - 1``).
``"level-embedding"`` (a documented lever that changes the method)
    The integer level code ``round(x * (levels - 1))`` goes through ``nn.Embedding(levels, d)``,
    giving ``d`` channels per pixel. The keyed random map destroys the order of intensities,
    which a convolution on raw intensities cannot undo; a learned per-level embedding can,
    because it treats every level as a symbol. ``levels`` must equal the number of output
    levels of the obfuscation (frames must hold values ``k / (levels - 1)``).

The classifier returns one logit per frame: ``P(classes[1])`` after a sigmoid.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from monai.networks.blocks import Convolution
from torch import Tensor, nn

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_bytes

__all__ = [
    "ClassifierConfig",
    "Classifier",
    "build_classifier",
    "save_classifier",
    "load_classifier",
    "MODELS",
    "CNN_MODELS",
    "INPUT_MODES",
    "MODEL_FILE",
]

MODELS = ("small", "wide", "densenet", "vit", "mlp")
#: Families that see an image clipped to [0, 1] (the others take any real-valued input).
CNN_MODELS = ("small", "wide", "densenet")
INPUT_MODES = ("intensity", "level-embedding")
MODEL_FILE = "model.pt"
_FORMAT = "medcloak-classifier"
_VERSION = 1
_NORM = ("GROUP", {"num_groups": 8})
_WIDTHS = {"small": (16, 32, 64, 128), "wide": (32, 64, 128, 256)}


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of the classifier network.

    Parameters
    ----------
    model : {"small", "wide", "densenet"}
        Architecture (see the module docstring).
    input_mode : {"intensity", "level-embedding"}
        How pixel values enter the network. ``level-embedding`` is off by default.
    levels : int, optional
        Number of grey levels of the input (required for ``level-embedding``, 2..65536).
    embed_dim : int
        Channels of the level embedding.
    dropout : float
        Dropout before the linear output layer, in [0, 1) (``small``/``wide``; MONAI's DenseNet
        has its own head).
    input_shape : tuple of int, optional
        ``vit`` / ``mlp``: shape of one input ((H, W), or (T, D) tokens).
    patch, dim, depth, heads : int
        ``vit``: patch side, token width, transformer layers, attention heads.
    position : {"learned", "none"}
        ``vit``: learned position embedding or none.
    tokens : bool
        ``vit``: the input is a sequence of patch tokens (N, T, D), not an image.
    hidden : int
        ``mlp``: width of the hidden layers.
    """

    model: str = "small"
    input_mode: str = "intensity"
    levels: int | None = None
    embed_dim: int = 8
    dropout: float = 0.2
    input_shape: tuple[int, ...] | None = None
    patch: int = 8
    dim: int = 64
    depth: int = 4
    heads: int = 4
    position: str = "learned"
    tokens: bool = False
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise MedcloakError(f"classifier model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.input_mode not in INPUT_MODES:
            raise MedcloakError(f"input_mode must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}")
        if self.input_mode == "level-embedding":
            if self.levels is None or not 2 <= int(self.levels) <= 65536:
                raise MedcloakError(f"level-embedding needs levels in 2..65536, got {self.levels!r}")
        if int(self.embed_dim) < 1 or not 0.0 <= float(self.dropout) < 1.0:
            raise MedcloakError("embed_dim must be >= 1 and dropout in [0, 1)")
        if self.model not in (*CNN_MODELS, "vit") and self.input_mode != "intensity":
            raise MedcloakError(f"input_mode {self.input_mode!r} is for the CNN families and the ViT, not {self.model!r}")
        from medcloak.learn.vit import POSITIONS

        if self.position not in POSITIONS:
            raise MedcloakError(f"position must be one of {', '.join(POSITIONS)}, got {self.position!r}")
        if min(int(self.patch), int(self.dim), int(self.depth), int(self.heads), int(self.hidden)) < 1 \
                or int(self.dim) % int(self.heads):
            raise MedcloakError("patch, dim, depth, heads, hidden must be >= 1 and dim a multiple of heads")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`MedcloakError`."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise MedcloakError(f"classifier config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    @property
    def clips_input(self) -> bool:
        """True for the CNN families, which see frames clipped to [0, 1]."""
        return self.model in CNN_MODELS


def _vgg(in_channels: int, widths: tuple[int, ...], dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        if i:
            layers.append(nn.MaxPool2d(2))
        for _ in range(2):
            layers.append(Convolution(2, c, w, kernel_size=3, act="RELU", norm=_NORM))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, 1)]
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """Input stage (intensity or level embedding) followed by a CNN giving one logit.

    ``forward(x)``: ``x`` float (N, H, W) or (N, 1, H, W) in [0, 1] -> logits float (N,).
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        if config.input_mode == "level-embedding":
            self.embed = nn.Embedding(int(config.levels), int(config.embed_dim))
            in_ch = int(config.embed_dim)
        else:
            self.embed = None
            in_ch = 1
        if config.model in ("vit", "mlp"):
            from medcloak.learn.vit import MLP, PatchViT

            if config.input_shape is None:
                raise MedcloakError(f"a {config.model} classifier needs input_shape (train_classifier fills it in)")
            self.body = (PatchViT(config.input_shape, patch=config.patch, dim=config.dim, depth=config.depth,
                                  heads=config.heads, position=config.position, tokens=config.tokens,
                                  dropout=min(config.dropout, 0.1),
                                  levels=config.levels if config.input_mode == "level-embedding" else None)
                         if config.model == "vit" else MLP(config.input_shape, hidden=config.hidden,
                                                           dropout=config.dropout))
        elif config.model == "densenet":
            from monai.networks.nets import DenseNet

            self.body = DenseNet(spatial_dims=2, in_channels=in_ch, out_channels=1, init_features=16,
                                 growth_rate=16, block_config=(4, 4, 4), bn_size=2, dropout_prob=0.0,
                                 norm=("GROUP", {"num_groups": 4}))
        else:
            self.body = _vgg(in_ch, _WIDTHS[config.model], config.dropout)

    def level_codes(self, x: Tensor) -> Tensor:
        """Integer level codes ``round(x * (levels - 1))`` of [0, 1] values (long tensor)."""
        n = int(self.config.levels) - 1
        return torch.round(x.clamp(0.0, 1.0) * n).long()

    def prepare(self, x) -> Tensor:
        """A float32 tensor of ``x`` as the network takes it (clipped to [0, 1] for the CNN families)."""
        import numpy as np

        a = np.asarray(x, dtype=np.float32)
        return torch.from_numpy(np.clip(a, 0.0, 1.0) if self.config.clips_input else np.ascontiguousarray(a))

    def forward(self, x: Tensor) -> Tensor:
        if not self.config.clips_input:
            return self.body(x)
        if x.ndim == 3:
            x = x[:, None]
        if self.embed is not None:
            h = self.embed(self.level_codes(x[:, 0]))  # (N, H, W, d)
            h = h.permute(0, 3, 1, 2).contiguous()
        else:
            h = x * 2.0 - 1.0
        out = self.body(h)
        return out.reshape(-1)


def build_classifier(config: ClassifierConfig | str = "small", *, seed: int | None = None, **options) -> Classifier:
    """Create an untrained classifier.

    Parameters
    ----------
    config : ClassifierConfig or str
        A config, or a model name (``"small"``, ``"wide"``, ``"densenet"``) completed by ``options``.
    seed : int, optional
        If given, ``torch.manual_seed(seed)`` before the weights are initialised.
    **options
        Further :class:`ClassifierConfig` fields when ``config`` is a name.
    """
    if isinstance(config, str):
        config = ClassifierConfig(model=config, **options)
    elif options:
        raise MedcloakError("pass either a ClassifierConfig or a model name with options, not both")
    if seed is not None:
        torch.manual_seed(int(seed))
    return Classifier(config)


def save_classifier(
    directory: str | os.PathLike,
    model: Classifier,
    *,
    classes: list[str],
    image_size: tuple[int, int],
    recipe: dict | None = None,
) -> Path:
    """Write ``directory/model.pt`` atomically (a plain dict: config, classes, image size, weights).

    Returns the file path. ``classes[1]`` is the positive class (the sigmoid's probability).
    """
    if len(classes) != 2:
        raise MedcloakError(f"a binary classifier needs exactly 2 classes, got {classes}")
    doc = {
        "format": _FORMAT,
        "version": _VERSION,
        "config": model.config.to_dict(),
        "classes": list(classes),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "recipe": dict(recipe or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(doc, buf)
    path = Path(directory) / MODEL_FILE
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """Read a model written by :func:`save_classifier` (a folder or the ``model.pt`` file).

    Returns
    -------
    model : Classifier
        In eval mode.
    info : dict
        ``classes`` (list of 2 str), ``image_size`` ((H, W)), ``recipe`` (dict), ``config``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise MedcloakError(f"no classifier here (expected {MODEL_FILE} from 'medcloak train')", p)
    try:
        doc = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise MedcloakError(f"unreadable classifier file ({type(exc).__name__})", p) from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise MedcloakError("not a medcloak classifier file", p)
    if doc.get("version") != _VERSION:
        raise MedcloakError(f"unsupported classifier format version {doc.get('version')!r}", p)
    config = ClassifierConfig.from_dict(doc["config"])
    model = Classifier(config)
    try:
        model.load_state_dict(doc["state_dict"])
    except RuntimeError:
        raise MedcloakError("classifier weights do not match its config", p) from None
    model.eval()
    info = {"classes": list(doc["classes"]), "image_size": tuple(doc["image_size"]),
            "recipe": dict(doc.get("recipe") or {}), "config": config}
    return model, info
