"""The one training recipe, used unchanged for original and obfuscated frames.

A :class:`Recipe` is frozen: the study builds one and hands the *same object* to the training on
originals and on obfuscated frames, so any difference in utility comes from the data, not from
tuning. Its fields are the whole schedule:

* optimiser: AdamW (``lr``, ``weight_decay``), batch size ``batch_size``;
* learning-rate schedule: ``ReduceLROnPlateau`` on the validation loss (factor ``lr_factor``,
  patience ``lr_patience`` epochs);
* augmentation, safe for obfuscated frames: random shifts of up to ``max_shift`` of the frame
  side (reflection padding then a random crop, so every pixel value of the output is a value of
  the input: the grey-level code survives) and, only if ``hflip``, horizontal flips. Never any
  intensity augmentation (it would move pixels between levels of the keyed map). Flips are off by
  default because the task is left vs right coronary artery: a mirror image is anatomy of the
  other side;
* at most ``max_epochs`` epochs; early stopping when the monitored validation quantity
  (``monitor``: ``val_loss`` or ``val_acc``) has not improved by ``min_delta`` for ``patience``
  epochs; the weights of the best epoch are restored;
* ``seed``: ``torch.manual_seed`` for weight initialisation and dropout, and a separate
  ``torch.Generator`` for shuffling and augmentation.

Why the defaults are patient (``patience=12``, ``lr_patience=5``, ``max_epochs=50``): at 128 px the
validation loss sits flat for the first epochs before the network takes off. The earlier defaults
(6 / 2 / 30) stopped a classifier on ORIGINAL frames at chance after 9 epochs on the CPU (the same
row on a GPU happened to take off and reached 1.000); with the current ones originals reached 0.923
and VAE(beta 0.1) -> 16-level map 0.979 (``docs/results/recipe-caveat-128-cpu.txt``). The 128 px
grid of ``docs/results/utility-grid-128.csv`` was measured with the earlier defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from medcloak.errors import MedcloakError

__all__ = ["Recipe", "MONITORS"]

MONITORS = ("val_loss", "val_acc")


@dataclass(frozen=True)
class Recipe:
    """Optimiser, schedule, augmentation and stopping rule of classifier training.

    Parameters
    ----------
    max_epochs : int
        Upper bound on training epochs (>= 1).
    batch_size : int
        Frames per optimisation step.
    lr : float
        Initial AdamW learning rate.
    weight_decay : float
        AdamW decoupled weight decay.
    lr_factor : float
        Multiplier of the learning rate on a plateau of the validation loss, in (0, 1).
    lr_patience : int
        Epochs without improvement of the validation loss before the rate is cut.
    patience : int
        Early stopping: epochs without improvement of ``monitor`` before training stops.
    min_delta : float
        Smallest change of ``monitor`` that counts as an improvement.
    monitor : {"val_loss", "val_acc"}
        Quantity early stopping and best-weight selection watch.
    max_shift : float
        Largest random shift as a fraction of the frame side (0 disables shifts).
    hflip : bool
        Random horizontal flips (off by default, see the module docstring).
    seed : int
        Experiment seed (initialisation, dropout, shuffling, augmentation).
    """

    max_epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_factor: float = 0.5
    lr_patience: int = 5
    patience: int = 12
    min_delta: float = 1e-4
    monitor: str = "val_loss"
    max_shift: float = 0.0625
    hflip: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.max_epochs) < 1 or int(self.batch_size) < 1:
            raise MedcloakError("recipe: max_epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 < self.lr_factor < 1:
            raise MedcloakError("recipe: lr must be > 0, weight_decay >= 0 and lr_factor in (0, 1)")
        if int(self.patience) < 1 or int(self.lr_patience) < 0 or self.min_delta < 0:
            raise MedcloakError("recipe: patience must be >= 1, lr_patience and min_delta >= 0")
        if self.monitor not in MONITORS:
            raise MedcloakError(f"recipe: monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if not 0.0 <= self.max_shift < 0.5:
            raise MedcloakError(f"recipe: max_shift must be in [0, 0.5), got {self.max_shift}")

    def with_(self, **changes) -> "Recipe":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`MedcloakError`."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise MedcloakError(f"recipe: unknown field(s) {', '.join(unknown)}")
        return cls(**d)
