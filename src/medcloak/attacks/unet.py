"""The attacker's network: a small 2-D U-Net (MONAI) and its training loop.

One network serves every learned attack: as an *inverse* network (obfuscated frame(s) in,
original frame out, sigmoid output in [0, 1]) for T1-T3, and as a *segmentation* network
(obfuscated frame in, vessel logit out) for T0. Width and depth are constructor arguments
(:class:`NetConfig`); training is plain Adam on a fixed seed.

All randomness here (initialisation, shuffling) is experiment randomness from ``seed``; the
caller's global torch RNG is left untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from monai.losses import DiceCELoss, SSIMLoss
from monai.networks.nets import UNet
from torch import nn

from medcloak.device import model_device, resolve_device
from medcloak.errors import MedcloakError

__all__ = ["NetConfig", "build_unet", "train_network", "predict"]


@dataclass(frozen=True)
class NetConfig:
    """Width, depth and training schedule of an attack network.

    Parameters
    ----------
    channels : tuple of int
        Feature maps per U-Net level; its length is the depth (levels), each level after the
        first halves the resolution. Frame sides must be divisible by ``2**(len(channels)-1)``.
    num_res_units : int
        Residual units per level (MONAI ``UNet``).
    norm : str
        Normalisation layer (MONAI name: ``"batch"``, ``"instance"``, ...).
    steps, batch_size, lr : int, int, float
        Adam schedule: ``steps`` optimisation steps (batches drawn by reshuffling the training
        set), whatever the number of training pairs, with a cosine learning-rate decay.
    augment : bool
        Random horizontal/vertical flips of each batch (inputs and targets alike).
    ssim_weight : float
        Inverse networks: loss = L1 + ``ssim_weight`` * (1 - SSIM) (Gaussian window 11,
        sigma 1.5, data range 1).
    seed : int
        Initialisation and shuffling seed.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    num_res_units: int = 1
    norm: str = "batch"
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    ssim_weight: float = 0.5
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise MedcloakError(f"attack net: channels needs >= 2 positive entries, got {self.channels}")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.ssim_weight < 0:
            raise MedcloakError("attack net: steps, batch_size >= 1, lr > 0, ssim_weight >= 0 required")

    def to_dict(self) -> dict:
        """JSON-serialisable fields."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def build_unet(config: NetConfig, *, in_channels: int = 1, out_channels: int = 1) -> nn.Module:
    """A MONAI 2-D ``UNet`` with ``config``'s width and depth, initialised from ``config.seed``.

    Returns a plain ``nn.Module`` mapping ``(B, in_channels, H, W)`` to raw outputs
    ``(B, out_channels, H, W)`` (no final activation).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=tuple(config.channels),
            strides=(2,) * (len(config.channels) - 1),
            num_res_units=config.num_res_units,
            norm=config.norm,
        )


def _as_input(x: np.ndarray) -> torch.Tensor:
    """(N, H, W) -> (N, 1, H, W); (N, C, H, W) kept. float32."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise MedcloakError(f"attack net: expected (N, H, W) or (N, C, H, W) inputs, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a))


def _check_size(config: NetConfig, shape: tuple[int, ...]) -> None:
    f = 2 ** (len(config.channels) - 1)
    if shape[-1] % f or shape[-2] % f:
        raise MedcloakError(f"attack net: frame size {shape[-2]}x{shape[-1]} must be divisible by {f}")


def train_network(
    inputs: np.ndarray,
    targets: np.ndarray,
    config: NetConfig,
    *,
    task: str = "inverse",
    progress: bool = True,
    desc: str = "attack",
    monitor: Callable[[nn.Module], float] | None = None,
    eval_every: int = 50,
    patience: int | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Train a fresh U-Net from ``inputs`` to ``targets``.

    Parameters
    ----------
    inputs : ndarray, float32 (N, H, W) or (N, C, H, W)
        What the attacker feeds the network (obfuscated frames, optionally extra channels).
    targets : ndarray (N, H, W)
        ``task="inverse"``: original frames in [0, 1]; ``task="segment"``: vessel masks (bool
        or {0, 1}).
    config : NetConfig
    task : {"inverse", "segment"}
        Inverse: sigmoid output, loss L1 + ``ssim_weight`` * (1 - SSIM). Segment: logits,
        loss Dice + binary cross-entropy (MONAI ``DiceCELoss``).
    progress : bool
        tqdm bar over steps on stderr.
    monitor : callable, optional
        Early stopping: ``monitor(net) -> score`` (higher is better, e.g. a held-out Dice) is
        called with the network in eval mode every ``eval_every`` steps and after the last step.
        The weights of the best-scoring evaluation are kept and returned.
    eval_every : int
        Steps between two ``monitor`` calls (>= 1).
    patience : int, optional
        Stop once ``patience`` consecutive evaluations have not improved on the best score
        (``None``: run all ``config.steps``).
    device : str or torch.device, optional
        Where to train (:func:`medcloak.device.resolve_device`; default the process-wide
        training device, CPU unless chosen). ``monitor`` sees the network on that device
        (:func:`predict` follows it); the returned network is on the CPU.

    Returns
    -------
    nn.Module
        The trained network in eval mode, on the CPU; use :func:`predict`. With ``monitor`` it carries
        ``net.history`` (list of ``(step, score)``, step = optimisation steps done),
        ``net.best_step`` and ``net.steps_run``.
    """
    from tqdm.auto import tqdm

    if task not in ("inverse", "segment"):
        raise MedcloakError(f"attack net: unknown task {task!r}")
    x = _as_input(inputs)
    y = torch.from_numpy(np.ascontiguousarray(np.asarray(targets, dtype=np.float32)))[:, None]
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:] or x.shape[0] == 0:
        raise MedcloakError(f"attack net: {x.shape[0]} inputs {tuple(x.shape[2:])} vs targets {tuple(y.shape)}")
    _check_size(config, x.shape)
    dev = resolve_device(device)
    x, y = x.to(dev), y.to(dev)
    net = build_unet(config, in_channels=x.shape[1]).to(dev)
    net.task = task  # read by predict()
    if task == "inverse":
        ssim_loss = SSIMLoss(spatial_dims=2, data_range=1.0)

        def loss_fn(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            pred = torch.sigmoid(out)
            loss = (pred - yb).abs().mean()
            if config.ssim_weight > 0 and min(yb.shape[-2:]) >= 11:
                loss = loss + config.ssim_weight * ssim_loss(pred, yb)
            return loss
    else:
        loss_fn = DiceCELoss(sigmoid=True, batch=True)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    gen = torch.Generator().manual_seed(config.seed)
    n = x.shape[0]
    bs = min(config.batch_size, max(n, 2))
    order = torch.randperm(n, generator=gen)
    pos, running = 0, None
    if monitor is not None and eval_every < 1:
        raise MedcloakError(f"attack net: eval_every must be >= 1, got {eval_every}")
    history: list[tuple[int, float]] = []
    best: tuple[float, int, dict] | None = None  # (score, step, state)
    stale = 0

    def evaluate(done: int) -> bool:
        """Score the net after ``done`` steps; True when patience has run out."""
        nonlocal best, stale
        net.eval()
        with torch.inference_mode():
            score = float(monitor(net))
        net.train()
        history.append((done, score))
        if best is None or score > best[0]:
            best, stale = (score, done, {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}), 0
        else:
            stale += 1
        if progress:
            bar.set_postfix(loss=f"{running:.4f}", val=f"{score:.3f}", best=f"{best[0]:.3f}")
        return patience is not None and stale >= patience

    bar = tqdm(range(config.steps), desc=desc, unit="step", disable=not progress, leave=False,
               mininterval=1.0)
    net.train()
    steps_run = 0
    for step in bar:
        if pos + bs > n:  # reshuffle; batches have a fixed size (batch norm needs >= 2)
            order, pos = torch.cat([order[pos:], torch.randperm(n, generator=gen)]), 0
        idx, pos = order[pos : pos + bs], pos + bs
        xb, yb = x[idx.to(dev)], y[idx.to(dev)]
        if config.augment:
            flips = torch.randint(0, 2, (2,), generator=gen).tolist()
            dims = [d for d, f in zip((-1, -2), flips) if f]
            if dims:
                xb, yb = xb.flip(dims), yb.flip(dims)
        loss = loss_fn(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        lv = loss.item()
        running = lv if running is None else 0.95 * running + 0.05 * lv
        steps_run = step + 1
        if progress and step % 20 == 0 and monitor is None:
            bar.set_postfix(loss=f"{running:.4f}")
        if monitor is not None and steps_run % eval_every == 0 and steps_run < config.steps:
            if evaluate(steps_run):
                break
    bar.close()
    if monitor is not None:
        if not history or history[-1][0] != steps_run:
            evaluate(steps_run)
    net = net.to("cpu")
    if monitor is not None:
        net.load_state_dict(best[2])
        net.history, net.best_step, net.steps_run = history, best[1], steps_run
    return net.eval()


def predict(net: nn.Module, inputs: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Apply a trained attack network.

    Returns
    -------
    ndarray, float32 (N, H, W) in [0, 1]
        Reconstructed frames (inverse task) or vessel probabilities (segment task).
    """
    x = _as_input(inputs)
    net.eval()
    dev = model_device(net)
    out = np.empty((x.shape[0], *x.shape[2:]), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch_size):
            out[s : s + batch_size] = torch.sigmoid(net(x[s : s + batch_size].to(dev)))[:, 0].cpu().numpy()
    return out
