"""The scheme ``bottleneck``: an encoder trained adversarially at the hospital (DeepObfuscator-style).

Source: A. Li, J. Guo, H. Yang, F. D. Salim, Y. Chen, "DeepObfuscator: Obfuscating Intermediate
Representations with Privacy-Preserving Adversarial Learning on Smartphones", IoTDI 2021
(arXiv 1909.04126). An encoder is trained so that a task head on its output keeps the label
while a reconstruction adversary, trained at the same time to rebuild the input from that output,
is penalised. Needs the task labels at the data owner (``uses_labels``).

Our small re-implementation (the source's networks are for natural images; every size here is
ours and in the config):

* encoder: ``conv3x3(1 -> c)`` + ReLU, then ``log2(downsample)`` times ``conv3x3 stride 2 (c -> c)``
  + ReLU, then ``conv1x1(c -> 1)`` and a sigmoid: a one-channel image of ``(H / d, W / d)``
  in [0, 1] (the release);
* task head (kept at the hospital, not saved): ``conv3x3(1 -> c)`` + ReLU, ``conv3x3 stride 2``
  + ReLU, global average pool, linear to the classes;
* reconstruction adversary (not saved): ``conv3x3(1 -> c)`` + ReLU, ``log2(d)`` times (nearest
  upsampling x2, ``conv3x3`` + ReLU), ``conv1x1(c -> 1)`` + sigmoid; loss MSE to the frame;
* each batch: one adversary step on the detached release, then one encoder + head step on
  ``cross_entropy - adv_weight * adversary MSE`` (Adam, ``lr``), as in the source's min-max game;
  no private-attribute adversary (we have no private attribute but the image itself);
* randomness: every weight's initial value (``"bottleneck/init"``, He-normal, biases zero) and
  the batch order (``"bottleneck/batch-order"``, one keyed permutation per epoch) come from the
  key, so the encoder is a secret of the key *and* the data, and fitting is deterministic for
  (key, config, frames, labels) on one torch thread; the fit therefore depends on the key
  (``key_independent_fit = False``): another key means fitting again.

Output: ``"image"`` of low resolution, float32 ``(N, H / downsample, W / downsample)`` in [0, 1]
(sigmoid). Frame sides must be multiples of ``downsample``. :meth:`apply` runs the encoder one
frame at a time (no batch dependence). Saved: the encoder's weights (``encoder.npz``, no pickle);
the training history is not saved.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.obfuscation._zoo import ZooConfig, check_float, check_int, grid, keyed_permutation
from medcloak.obfuscation.scheme import Scheme, register

__all__ = ["BottleneckConfig", "BottleneckScheme"]

_WEIGHTS = "encoder.npz"


@dataclass(frozen=True)
class BottleneckConfig(ZooConfig):
    """Settings of :class:`BottleneckScheme`.

    Parameters
    ----------
    channels : int
        Width ``c`` of every network (1..256).
    downsample : {1, 2, 4, 8}
        The release is ``(H / downsample, W / downsample)``.
    adv_weight : float
        Weight of the adversary's reconstruction error the encoder maximises (>= 0; 0 trains
        for the task alone).
    epochs, batch_size : int
        Training length and batch size.
    lr : float
        Adam learning rate of all three networks.
    """

    channels: int = 16
    downsample: int = 4
    adv_weight: float = 1.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3

    def __post_init__(self) -> None:
        check_int("bottleneck", "channels", self.channels, lo=1, hi=256)
        check_int("bottleneck", "downsample", self.downsample, allowed=(1, 2, 4, 8))
        check_float("bottleneck", "adv_weight", self.adv_weight, positive=False)
        if self.adv_weight < 0:
            raise MedcloakError(f"bottleneck: adv_weight must be >= 0, got {self.adv_weight}")
        check_int("bottleneck", "epochs", self.epochs, lo=1, hi=10000)
        check_int("bottleneck", "batch_size", self.batch_size, lo=1, hi=65536)
        check_float("bottleneck", "lr", self.lr)


def _encoder(c: int, d: int):
    from torch import nn

    layers = [nn.Conv2d(1, c, 3, padding=1), nn.ReLU()]
    for _ in range(int(np.log2(d))):
        layers += [nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(c, 1, 1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _head(c: int, n_classes: int):
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))


def _adversary(c: int, d: int):
    from torch import nn

    layers = [nn.Conv2d(1, c, 3, padding=1), nn.ReLU()]
    for _ in range(int(np.log2(d))):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(c, 1, 1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _keyed_init(key, net, what: str) -> None:
    """He-normal weights from the key (label ``"bottleneck/init"``, context = network and parameter), zero biases."""
    import torch

    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1:
                p.zero_()
                continue
            fan_in = int(np.prod(p.shape[1:]))
            w = key.normal("bottleneck/init", tuple(p.shape), context=f"{what}/{name}".encode())
            p.copy_(torch.from_numpy(w * np.float32(np.sqrt(2.0 / fan_in))))


@register
class BottleneckScheme(Scheme):
    """A task-trained encoder whose release a reconstruction adversary is trained against.

    The output is a low-resolution image ``(N, H / downsample, W / downsample)`` in [0, 1].
    """

    name = "bottleneck"
    Config = BottleneckConfig
    output = "image"
    key_independent_fit = False
    uses_labels = True

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self.encoder = None
        self._history: list[dict] = []

    @property
    def history(self) -> list[dict]:
        """Per epoch: mean task loss, task accuracy and the adversary's reconstruction MSE (train, and val when given)."""
        return list(self._history)

    @property
    def uses_torch(self) -> bool:
        return True

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(H / downsample, W / downsample)``."""
        return grid("bottleneck", (h, w), self.config.downsample)

    def _fit(self, train, *, val=None, progress: bool = False, **options) -> None:
        import torch
        import torch.nn.functional as F

        if options:
            raise MedcloakError(f"bottleneck: unknown fit option(s) {', '.join(sorted(options))}")
        cfg = self.config
        x = np.asarray(train.frames, np.float32)
        grid("bottleneck", x.shape, cfg.downsample)
        classes = sorted(set(train.labels))
        if len(classes) < 2:
            raise MedcloakError("bottleneck: the training labels must hold at least two classes")
        y = np.array([classes.index(v) for v in train.labels], np.int64)
        enc, head, adv = _encoder(cfg.channels, cfg.downsample), _head(cfg.channels, len(classes)), \
            _adversary(cfg.channels, cfg.downsample)
        for net, what in ((enc, "encoder"), (head, "head"), (adv, "adversary")):
            _keyed_init(self.key, net, what)
        opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=cfg.lr)
        opt_adv = torch.optim.Adam(adv.parameters(), lr=cfg.lr)
        xt, yt = torch.from_numpy(x)[:, None], torch.from_numpy(y)
        self._history = []
        for epoch in range(cfg.epochs):
            order = keyed_permutation(self.key, "bottleneck/batch-order", len(x), context=f"epoch={epoch}".encode())
            sums = np.zeros(3)
            for s in range(0, len(x), cfg.batch_size):
                idx = torch.from_numpy(order[s: s + cfg.batch_size])
                xb, yb = xt[idx], yt[idx]
                # the adversary learns to rebuild the frame from the (fixed) release
                rec = F.mse_loss(adv(enc(xb).detach()), xb)
                opt_adv.zero_grad()
                rec.backward()
                opt_adv.step()
                # the encoder and head keep the label and push the adversary's error up
                z = enc(xb)
                logits = head(z)
                ce = F.cross_entropy(logits, yb)
                rec2 = F.mse_loss(adv(z), xb)
                loss = ce - cfg.adv_weight * rec2
                opt.zero_grad()
                loss.backward()
                opt.step()
                n = len(idx)
                sums += n * np.array([ce.item(), (logits.argmax(1) == yb).float().mean().item(), rec2.item()])
            row = {"epoch": epoch + 1, "task_loss": float(sums[0] / len(x)), "task_acc": float(sums[1] / len(x)),
                   "recon_mse": float(sums[2] / len(x))}
            if val is not None and len(getattr(val, "frames", val)):
                with torch.no_grad():
                    vx = torch.from_numpy(np.asarray(getattr(val, "frames", val), np.float32))[:, None]
                    row["val_recon_mse"] = float(F.mse_loss(adv(enc(vx)), vx))
                    if hasattr(val, "labels") and set(val.labels) <= set(classes):
                        vy = torch.tensor([classes.index(v) for v in val.labels])
                        row["val_task_acc"] = float((head(enc(vx)).argmax(1) == vy).float().mean())
            self._history.append(row)
        enc.eval()
        self.encoder = enc

    def _apply(self, frames: np.ndarray) -> np.ndarray:
        import torch

        grid("bottleneck", frames.shape, self.config.downsample)
        out = []
        with torch.no_grad():
            for f in frames:  # one frame at a time: no batch dependence
                out.append(self.encoder(torch.from_numpy(np.ascontiguousarray(f))[None, None])[0, 0].numpy())
        return np.stack(out).astype(np.float32)

    # -- state ---------------------------------------------------------------------------------
    def _weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().astype("<f4") for k, v in self.encoder.state_dict().items()}

    def _state_bytes(self) -> bytes:
        h = hashlib.sha256()
        for k, v in sorted(self._weights().items()):
            h.update(k.encode() + b"\x00" + str(v.shape).encode() + b"\x00" + v.tobytes())
        return h.digest()

    def _save_state(self, directory: Path) -> None:
        from medcloak.io.atomic import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **self._weights())
        atomic_write_bytes(directory / _WEIGHTS, buf.getvalue(), mode=0o600)

    def _load_state(self, directory: Path) -> None:
        import torch

        path = directory / _WEIGHTS
        try:
            with np.load(path, allow_pickle=False) as z:
                weights = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise MedcloakError(f"unreadable encoder weights ({type(exc).__name__})", path) from None
        enc = _encoder(self.config.channels, self.config.downsample)
        try:
            enc.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()})
        except RuntimeError:
            raise MedcloakError("encoder weights do not match the config", path) from None
        enc.eval()
        self.encoder = enc
