"""Training loop of the cloud's classifier: :func:`train_classifier` -> :class:`TrainResult`.

One recipe (:class:`~medcloak.learn.recipe.Recipe`) drives everything: AdamW, a plateau
learning-rate schedule, shift (and optional flip) augmentation that keeps every pixel value (for
the CNN families only: the ``vit`` and ``mlp`` families see their inputs unshifted, since a
shift would break patch alignment and token order),
early stopping on the validation set with the best epoch's weights restored. Binary
cross-entropy on one logit; ``classes[1]`` is the positive class.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from medcloak.device import resolve_device
from medcloak.errors import MedcloakError
from medcloak.learn.models import Classifier, ClassifierConfig, build_classifier
from medcloak.learn.recipe import Recipe

__all__ = ["TrainResult", "train_classifier", "encode_labels", "augment_batch", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns.

    Attributes
    ----------
    model : Classifier
        Trained network in eval mode, holding the weights of ``best_epoch``.
    history : list of dict
        One row per epoch with the keys of :data:`HISTORY_COLUMNS` (``seconds``: wall time of the
        epoch's training and validation passes).
    best_epoch : int
        1-based epoch whose weights were kept.
    stopped_early : bool
        True if early stopping ended training before ``recipe.max_epochs``.
    classes : list of str
        ``[negative, positive]`` class names.
    recipe : Recipe
        The recipe object used (the very object passed in).
    config : ClassifierConfig
    image_size : (int, int)
        (H, W) of the training frames.
    """

    model: Classifier
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    classes: list[str]
    recipe: Recipe
    config: ClassifierConfig
    image_size: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Number of epochs run."""
        return len(self.history)

    @property
    def mean_epoch_seconds(self) -> float:
        """Mean wall time of one epoch, seconds."""
        return float(np.mean([r["seconds"] for r in self.history])) if self.history else float("nan")

    @property
    def total_seconds(self) -> float:
        """Total training wall time, seconds."""
        return float(sum(r["seconds"] for r in self.history))


def encode_labels(labels: Sequence, classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Turn class names (or 0/1 integers) into an int64 array of 0/1.

    Parameters
    ----------
    labels : sequence of str or int
        Class names, or integers already in {0, 1}.
    classes : sequence of 2 str, optional
        ``[negative, positive]``; default: the two sorted distinct names (``["LCA", "RCA"]``
        for the angiography task), or ``["0", "1"]`` for integer labels.

    Returns
    -------
    y : ndarray int64 (N,)
    classes : list of 2 str
    """
    arr = np.asarray(list(labels))
    if arr.size and np.issubdtype(arr.dtype, np.integer) or (arr.dtype == bool):
        y = arr.astype(np.int64)
        if y.size and not set(np.unique(y)) <= {0, 1}:
            raise MedcloakError(f"integer labels must be 0 or 1, got {sorted(set(np.unique(y)))[:5]}")
        return y, list(classes) if classes is not None else ["0", "1"]
    names = [str(v) for v in arr]
    if classes is None:
        classes = sorted(set(names))
        if len(classes) == 1:
            raise MedcloakError(f"only one class ({classes[0]}) in the labels; a binary task needs two")
    classes = list(classes)
    if len(classes) != 2:
        raise MedcloakError(f"binary classification needs exactly 2 classes, got {classes}")
    index = {c: i for i, c in enumerate(classes)}
    bad = sorted({n for n in names if n not in index})
    if bad:
        raise MedcloakError(f"label(s) {', '.join(bad[:3])} not among the classes {classes}")
    return np.array([index[n] for n in names], dtype=np.int64), classes


def augment_batch(x: torch.Tensor, *, max_shift: float, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random shifts (reflection padding + crop) and optional horizontal flips of (N, H, W).

    Every output pixel is a copy of an input pixel of the same frame, so grey-level codes of
    obfuscated frames are preserved exactly. Randomness comes only from ``generator``.
    """
    n, h, w = x.shape
    s = int(round(max_shift * min(h, w)))
    s = min(s, h - 1, w - 1)
    if s > 0:
        padded = F.pad(x[:, None], (s, s, s, s), mode="reflect")[:, 0]
        off = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
        x = torch.stack([padded[i, off[i, 0] : off[i, 0] + h, off[i, 1] : off[i, 1] + w] for i in range(n)])
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None], x.flip(-1), x)
    return x


def _check_xy(x, y, what: str, *, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] == 0:
        raise MedcloakError(f"{what}: expected a non-empty (N, H, W) or (N, T, D) stack, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise MedcloakError(f"{what}: frames hold non-finite values")
    if len(y) != a.shape[0]:
        raise MedcloakError(f"{what}: {a.shape[0]} frames but {len(y)} labels")
    a = np.clip(a, 0.0, 1.0) if clip else np.ascontiguousarray(a)
    return torch.from_numpy(a), torch.as_tensor(np.asarray(y), dtype=torch.float32)


def _eval_pass(model: Classifier, x: torch.Tensor, y: torch.Tensor, batch_size: int,
               device: torch.device | None = None) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i : i + batch_size].to(device))
            t = y[i : i + batch_size].to(device)
            loss_sum += float(F.binary_cross_entropy_with_logits(logits, t, reduction="sum"))
            correct += int(((logits > 0).float() == t).sum())
    return loss_sum / x.shape[0], correct / x.shape[0]


def train_classifier(
    train_x: np.ndarray,
    train_y: Sequence,
    val_x: np.ndarray,
    val_y: Sequence,
    *,
    recipe: Recipe,
    model: str | ClassifierConfig = "small",
    classes: Sequence[str] | None = None,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
    **model_options,
) -> TrainResult:
    """Train a binary classifier from scratch with one recipe.

    Parameters
    ----------
    train_x, val_x : ndarray float32 (N, H, W) in [0, 1]
        Training and validation frames (patient-wise disjoint: take them from the manifest's
        ``split`` column). All frames share one size.
    train_y, val_y : sequence of str or int
        Class names (e.g. ``"LCA"``/``"RCA"``) or 0/1.
    recipe : Recipe
        The training recipe (kept on the result as the same object).
    model : str or ClassifierConfig
        ``"small"``, ``"wide"``, ``"densenet"``, or a full config.
    classes : sequence of 2 str, optional
        ``[negative, positive]`` (default: sorted distinct training labels).
    progress : bool
        tqdm bar over epochs on stderr.
    callback : callable, optional
        Called with each epoch's history row.
    device : str or torch.device, optional
        Where to train (:func:`medcloak.device.resolve_device`; default the process-wide
        training device, CPU unless chosen). The returned model is on the CPU.
    **model_options
        Further :class:`ClassifierConfig` fields when ``model`` is a name, e.g.
        ``input_mode="level-embedding", levels=16``.

    Returns
    -------
    TrainResult
    """
    if not isinstance(recipe, Recipe):
        raise MedcloakError("train_classifier needs recipe=Recipe(...)")
    ytr, classes = encode_labels(train_y, classes)
    yva, _ = encode_labels(val_y, classes)
    if len(set(ytr.tolist())) < 2:
        raise MedcloakError("training split holds only one class")
    config = model if isinstance(model, ClassifierConfig) else ClassifierConfig(model=model, **model_options)
    xtr, ttr = _check_xy(train_x, ytr, "training frames", clip=config.clips_input)
    xva, tva = _check_xy(val_x, yva, "validation frames", clip=config.clips_input)
    if xtr.shape[1:] != xva.shape[1:]:
        raise MedcloakError(f"training frames are {tuple(xtr.shape[1:])} but validation frames {tuple(xva.shape[1:])}")
    if not config.clips_input and config.input_shape is None:
        config = replace(config, input_shape=tuple(int(v) for v in xtr.shape[1:]))
    dev = resolve_device(device)
    net = build_classifier(config, seed=recipe.seed).to(dev)
    gen = torch.Generator().manual_seed(int(recipe.seed) + 1)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=recipe.lr_factor,
                                                       patience=recipe.lr_patience)
    sign = 1.0 if recipe.monitor == "val_loss" else -1.0  # minimise sign * value
    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    history: list[dict] = []
    n = xtr.shape[0]
    bar = tqdm(range(1, recipe.max_epochs + 1), disable=not progress, file=sys.stderr, unit="epoch",
               desc=f"train {config.model}")
    stopped = False
    for epoch in bar:
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            if idx.numel() < 2 and n >= 2:  # batch norm needs two samples; the frame is seen next epoch
                continue
            xb = xtr[idx]
            if config.clips_input:  # shifts would break patch alignment and token order: images for CNNs only
                xb = augment_batch(xb, max_shift=recipe.max_shift, hflip=recipe.hflip, generator=gen)
            xb = xb.to(dev)
            tb = ttr[idx].to(dev)
            logits = net(xb)
            loss = F.binary_cross_entropy_with_logits(logits, tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * idx.numel()
            correct += int(((logits.detach() > 0).float() == tb).sum())
        val_loss, val_acc = _eval_pass(net, xva, tva, max(recipe.batch_size, 128), dev)
        sched.step(val_loss)
        row = {"epoch": epoch, "train_loss": loss_sum / n, "train_acc": correct / n, "val_loss": val_loss,
               "val_acc": val_acc, "lr": float(opt.param_groups[0]["lr"]), "seconds": time.perf_counter() - t0}
        history.append(row)
        if callback is not None:
            callback(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        value = sign * (val_loss if recipe.monitor == "val_loss" else val_acc)
        if value < best - recipe.min_delta:
            best, best_epoch, bad = value, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= recipe.patience:
                stopped = epoch < recipe.max_epochs
                break
    bar.close()
    net = net.to("cpu")
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainResult(net, history, best_epoch, stopped, list(classes), recipe, config,
                       image_size=(int(xtr.shape[1]), int(xtr.shape[2])))
