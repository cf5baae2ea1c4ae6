"""The VAE: the first, trained stage of the obfuscation.

The hospital trains a variational autoencoder on its own frames. Its latent is *spatial*
(``latent_channels`` maps at ``1 / 2**downsamples`` of the frame size), not a vector: a
calibration prototype showed that a vector latent with ``beta = 1`` erases thin vessels,
while a spatial latent with a small ``beta`` keeps them.

The pipeline (:mod:`medcloak.obfuscation.pipeline`) calls :func:`reconstruct` with latent noise
derived from the secret key; this module never draws protective randomness itself. The only
randomness here (weight initialisation, shuffling, the reparameterisation noise during training)
is experiment randomness from :attr:`VAEConfig.seed`.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from medcloak.errors import MedcloakError
from medcloak.obfuscation.vae_config import VAEConfig, latent_shape
from medcloak.obfuscation.vae_inference import build_layers

__all__ = [
    "VAEConfig",
    "VAE_PRESETS",
    "vae_preset",
    "VAE",
    "latent_shape",
    "vae_loss",
    "train_vae",
    "reconstruct",
    "vae_to_bytes",
    "vae_from_bytes",
    "vae_payload",
]

_FORMAT = "medcloak-vae"
_FORMAT_VERSION = 1
_LOGVAR_RANGE = (-30.0, 20.0)


def _conv(cin: int, cout: int, *, strides: int = 1, kernel: int = 3, transposed: bool = False) -> nn.Module:
    from monai.networks.blocks import Convolution  # MONAI is imported only to build a trainable VAE

    return Convolution(
        2, cin, cout, strides=strides, kernel_size=kernel, act="PRELU", norm=None,
        is_transposed=transposed, padding=None if not transposed else 1,
        output_padding=None if not transposed else strides - 1,
    )


def _res(c: int) -> nn.Module:
    from monai.networks.blocks import ResidualUnit

    return ResidualUnit(2, c, c, subunits=2, act="PRELU", norm=None)


class VAE(nn.Module):
    """Convolutional VAE with a spatial Gaussian latent and a sigmoid decoder.

    Encoder: a 3x3 conv stem at full resolution, then per stage a stride-2 conv doubling the
    channels followed by ``residual_units`` residual units (only at reduced resolution, which
    keeps training CPU-friendly); a 1x1 conv gives ``mu`` and ``logvar``. The decoder mirrors
    it, upsampling by 2 per stage (``config.upsample``), then a 3x3 conv at full resolution,
    a 1x1 conv and a sigmoid. Activations are PReLU; there is no normalisation layer.

    Parameters
    ----------
    config : VAEConfig
        Hyper-parameters (kept as ``self.config``).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.to_latent, self.decoder = build_layers(config, _conv, _res)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters ``(mu, logvar)``, each ``(B, latent_channels, h, w)``.

        ``x`` is ``(B, 1, H, W)`` in [0, 1]; ``logvar`` is clamped to [-30, 20].
        """
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(*_LOGVAR_RANGE)

    def decode(self, z: Tensor) -> Tensor:
        """Frames ``(B, 1, H, W)`` in [0, 1] (sigmoid output) from latents ``z``."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(recon, mu, logvar)``; ``recon`` decodes ``mu + sigma * eps`` in training mode and
        ``mu`` in eval mode. ``eps`` is drawn from ``self.generator`` if set, else the global RNG."""
        mu, logvar = self.encode(x)
        if self.training:
            gen = getattr(self, "generator", None)
            eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        return self.decode(z), mu, logvar



#: Named VAE settings, all measured with ``benchmarks/vae_fidelity.py`` at 128x128 (semi-synthetic
#: frames, validation split; JSONs in ``benchmarks/results/``):
#:
#: ``fast`` (= ``VAEConfig()``, the default): latent at 1/4 resolution, 20 epochs; SSIM vs the
#:   noise-free frame 0.928, vessel Dice 0.726 (720 training frames, CPU). The privacy tables in
#:   the README were measured with it.
#: ``fidelity``: latent at 1/2 resolution with a residual unit, vessel-weighted loss x20 plus an
#:   SSIM term, 40 epochs; SSIM 0.926, vessel Dice **0.813** (>= 0.80; ceiling of the noise-free frame
#:   0.864; 1,440 training frames, trained on an H200 in 2.4 s/epoch). Its latent holds twice as many
#:   numbers as the frame has pixels, so the VAE stage hides nothing by itself: all protection is the
#:   keyed map's. On 2 CPU cores it is an overnight fit.
VAE_PRESETS: dict[str, VAEConfig] = {
    "fast": VAEConfig(),
    "fidelity": VAEConfig(downsamples=1, residual_units=1, vessel_weight=20.0, ssim_weight=0.03, epochs=40),
}


def vae_preset(name: str) -> VAEConfig:
    """The named setting of :data:`VAE_PRESETS`; MedcloakError for an unknown name."""
    try:
        return VAE_PRESETS[name]
    except KeyError:
        raise MedcloakError(f"unknown VAE preset {name!r} (have {', '.join(VAE_PRESETS)})") from None


# ----------------------------------------------------------------------------- loss


def _gauss_window(sigma: float = 1.5, radius: int = 5) -> Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _ssim_map(a: Tensor, b: Tensor, window: Tensor) -> Tensor:
    """Per-pixel SSIM map (data range 1, K1=0.01, K2=0.03), reflect padding."""
    r = window.shape[-1] // 2
    pad = lambda t: nn.functional.pad(t, (r, r, r, r), mode="reflect")  # noqa: E731
    mu_a, mu_b = nn.functional.conv2d(pad(a), window), nn.functional.conv2d(pad(b), window)
    saa = nn.functional.conv2d(pad(a * a), window) - mu_a**2
    sbb = nn.functional.conv2d(pad(b * b), window) - mu_b**2
    sab = nn.functional.conv2d(pad(a * b), window) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))


def _vessel_weight(x: Tensor, radius: int) -> Tensor:
    """Normalised black top-hat (closing minus image) of ``x``, in [0, 1] per frame."""
    k = 2 * radius + 1
    dil = nn.functional.max_pool2d(x, k, stride=1, padding=radius)
    clo = -nn.functional.max_pool2d(-dil, k, stride=1, padding=radius)
    th = (clo - x).clamp_min(0)
    return th / th.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)


def vae_loss(
    x: Tensor, recon: Tensor, mu: Tensor, logvar: Tensor, config: VAEConfig
) -> tuple[Tensor, dict[str, float]]:
    """Training loss, averaged over the batch, per frame.

    ``sum_pixels(w * (x - recon)**2) + ssim_weight * H * W * (1 - mean SSIM)
    + beta * sum_latent KL(q(z|x) || N(0, I))`` with ``w = 1 + vessel_weight * tophat(x)``.

    Returns
    -------
    loss : Tensor
        Scalar, differentiable.
    parts : dict
        ``rec``, ``ssim``, ``kl`` per frame (floats), for logging.
    """
    se = (x - recon) ** 2
    if config.vessel_weight > 0:
        se = se * (1 + config.vessel_weight * _vessel_weight(x, radius=4))
    rec = se.sum(dim=(1, 2, 3)).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(dim=(1, 2, 3)).mean()
    loss = rec + config.beta * kl
    parts = {"rec": float(rec.detach()), "kl": float(kl.detach()), "ssim": 0.0}
    if config.ssim_weight > 0:
        window = _gauss_window().to(x)
        s = _ssim_map(recon, x, window).mean(dim=(1, 2, 3)).mean()
        loss = loss + config.ssim_weight * x.shape[-1] * x.shape[-2] * (1 - s)
        parts["ssim"] = float(s.detach())
    return loss, parts


# ----------------------------------------------------------------------------- training


def _check_frames(frames: np.ndarray, config: VAEConfig, what: str) -> np.ndarray:
    a = np.asarray(frames)
    if a.ndim != 3 or a.shape[0] == 0:
        raise MedcloakError(f"{what}: expected a non-empty (N, H, W) stack of frames, got shape {a.shape}")
    latent_shape(config, a.shape[1], a.shape[2])
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise MedcloakError(f"{what}: frames contain NaN or infinite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise MedcloakError(f"{what}: frames must be in [0, 1], got [{a.min():.4g}, {a.max():.4g}]")
    return np.clip(a, 0.0, 1.0)


def _new_model(config: VAEConfig) -> VAE:
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's global RNG
        torch.manual_seed(config.seed)
        return VAE(config)


def train_vae(
    train: np.ndarray,
    val: np.ndarray | None,
    config: VAEConfig,
    *,
    val_target: np.ndarray | None = None,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> tuple[VAE, list[dict]]:
    """Train a VAE on frames.

    Parameters
    ----------
    train : ndarray, float32 (N, H, W) in [0, 1]
        Training frames; ``H`` and ``W`` divisible by ``2**config.downsamples``.
    val : ndarray (M, H, W) in [0, 1], optional
        Validation frames (encoded and reconstructed through the mean latent).
    config : VAEConfig
        Hyper-parameters; ``config.seed`` fixes initialisation, shuffling and training noise.
    val_target : ndarray (M, H, W), optional
        What the validation reconstructions are compared to for ``val_ssim`` (e.g. the
        noise-free frames of a synthetic set); default ``val``.
    progress : bool
        Show a tqdm bar over epochs on stderr.
    callback : callable, optional
        Called with each history row after its epoch.
    device : str or torch.device, optional
        Where to train (:func:`medcloak.device.resolve_device`; default the process-wide
        training device, CPU unless chosen). The returned model is on the CPU.

    Returns
    -------
    model : VAE
        The trained model, in eval mode, on the CPU.
    history : list of dict
        Per epoch: ``epoch`` (1-based), ``train_loss`` and ``val_loss`` (per frame, see
        :func:`vae_loss`, divided by ``H * W``: a per-pixel figure), ``train_kl``
        (per-frame KL), ``val_ssim`` (:func:`medcloak.metrics.ssim`) and ``seconds``.
        Validation entries are ``None`` without ``val``.

    Notes
    -----
    Deterministic for a given ``config.seed`` on CPU with a fixed thread count.
    """
    from tqdm.auto import tqdm

    from medcloak import metrics
    from medcloak.device import resolve_device

    dev = resolve_device(device)

    x_train = torch.from_numpy(_check_frames(train, config, "training frames"))[:, None]
    x_val = None if val is None else _check_frames(val, config, "validation frames")
    if val_target is not None:
        if x_val is None:
            raise MedcloakError("val_target given without val frames")
        val_target = np.asarray(val_target, dtype=np.float32)
        if val_target.shape != x_val.shape:
            raise MedcloakError(f"val_target shape {val_target.shape} differs from val shape {x_val.shape}")
    if x_val is not None and x_val.shape[1:] != tuple(x_train.shape[2:]):
        raise MedcloakError(f"validation frames are {x_val.shape[1:]}, training frames {tuple(x_train.shape[2:])}")

    model = _new_model(config).to(dev)
    x_train = x_train.to(dev)
    shuffle = torch.Generator().manual_seed(config.seed)
    model.generator = torch.Generator(device=dev).manual_seed(config.seed + 1)  # reparameterisation noise
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n, pixels = x_train.shape[0], x_train.shape[2] * x_train.shape[3]
    history: list[dict] = []
    bar = tqdm(range(1, config.epochs + 1), desc="VAE", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        total, total_kl = 0.0, 0.0
        for idx in torch.randperm(n, generator=shuffle).split(config.batch_size):
            xb = x_train[idx.to(dev)]
            recon, mu, logvar = model(xb)
            loss, parts = vae_loss(xb, recon, mu, logvar, config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            total_kl += parts["kl"] * len(idx)
        row = {"epoch": epoch, "train_loss": total / n / pixels, "train_kl": total_kl / n,
               "val_loss": None, "val_ssim": None}
        if x_val is not None:
            model.eval()
            vloss = 0.0
            with torch.inference_mode():
                xv = torch.from_numpy(x_val)[:, None].to(dev)
                for xb in xv.split(64):
                    recon, mu, logvar = model(xb)
                    vloss += float(vae_loss(xb, recon, mu, logvar, config)[0]) * len(xb)
            rec = reconstruct(model, x_val)
            row["val_loss"] = vloss / len(x_val) / pixels
            row["val_ssim"] = metrics.ssim(rec, x_val if val_target is None else val_target)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if progress:
            bar.set_postfix(loss=f"{row['train_loss']:.4g}",
                            ssim="-" if row["val_ssim"] is None else f"{row['val_ssim']:.3f}")
        if callback is not None:
            callback(row)
    model.eval()
    del model.generator
    return model.to("cpu"), history


def reconstruct(
    model: VAE,
    frames: np.ndarray,
    *,
    noise: np.ndarray | None = None,
    batch_size: int = 64,
    channels_last: bool = False,
) -> np.ndarray:
    """Encode and decode frames.

    Parameters
    ----------
    model : VAE
        A trained model (put in eval mode here).
    frames : ndarray, float32 (N, H, W) in [0, 1]
    noise : ndarray, float32 (N, C, h, w), optional
        Standard-normal latent noise from the caller (the pipeline derives it from the
        secret key). ``None`` decodes the posterior mean ``mu``; otherwise
        ``z = mu + exp(0.5 * logvar) * noise``.
    batch_size : int
        Frames per forward pass (memory only; results agree to float32 rounding, ~1e-7).
    channels_last : bool
        Lay the input and the latent out channels-last (NHWC). Pass a model converted with
        ``model.to(memory_format=torch.channels_last)`` to get the speed-up (about 2x at
        256 px, 2-3x at 512 px on one CPU thread: oneDNN then skips a layout reorder per
        layer; ``benchmarks/obfuscation_throughput.py``). Results agree with the default
        layout to float32 rounding (~6e-8) and are themselves deterministic for a fixed
        ``batch_size`` and thread count.

    Returns
    -------
    ndarray, float32 (N, H, W) in [0, 1]
        Inputs and latent noise are cast to the dtype of the model's parameters (a model converted
        with ``model.to(torch.bfloat16)`` runs in bfloat16: the engine ``bf16`` of
        :mod:`medcloak.obfuscation.pipeline`), the output back to float32.
    """
    x = _check_frames(frames, model.config, "frames")
    shape = (x.shape[0], *latent_shape(model.config, x.shape[1], x.shape[2]))
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != shape:
            raise MedcloakError(f"latent noise must have shape {shape}, got {noise.shape}")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.eval()
    param = next(model.parameters())
    dev, tdt = param.device, param.dtype
    out = np.empty(x.shape, dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch_size):
            xb = torch.from_numpy(x[s : s + batch_size])[:, None].to(dev, tdt).contiguous(memory_format=layout)
            mu, logvar = model.encode(xb)
            z = mu
            if noise is not None:
                z = mu + torch.exp(0.5 * logvar) * torch.from_numpy(noise[s : s + batch_size]).to(dev, tdt)
            if channels_last:
                z = z.contiguous(memory_format=layout)
            out[s : s + batch_size] = model.decode(z)[:, 0].float().cpu().numpy()
    return out


# ----------------------------------------------------------------------------- serialisation


def vae_to_bytes(model: VAE) -> bytes:
    """Serialise config and weights; the same model always gives the same bytes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "state_dict": state,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def vae_payload(data: bytes) -> tuple[VAEConfig, dict]:
    """``(config, state_dict)`` of :func:`vae_to_bytes` output (``torch.load(weights_only=True)``).

    Raises
    ------
    MedcloakError
        If ``data`` is not a medcloak VAE of a known format version.
    """
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not our file"
        raise MedcloakError(f"not a medcloak VAE ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise MedcloakError("not a medcloak VAE (missing format tag)")
    if payload.get("version") != _FORMAT_VERSION:
        raise MedcloakError(f"unsupported medcloak VAE format version {payload.get('version')}")
    try:
        return VAEConfig.from_dict(json.loads(payload["config"])), payload["state_dict"]
    except MedcloakError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MedcloakError(f"corrupt medcloak VAE ({type(exc).__name__}: {exc})") from None


def vae_from_bytes(data: bytes) -> VAE:
    """Inverse of :func:`vae_to_bytes` (loads with ``weights_only=True``).

    Raises
    ------
    MedcloakError
        If ``data`` is not a medcloak VAE of a known format version.
    """
    config, state = vae_payload(data)
    try:
        model = VAE(config)
        model.load_state_dict(state)
    except MedcloakError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MedcloakError(f"corrupt medcloak VAE ({type(exc).__name__}: {exc})") from None
    return model.eval()
