"""The VAE's inference network in plain torch: what obfuscating a frame runs.

:class:`medcloak.obfuscation.vae.VAE` is built from MONAI blocks, and importing MONAI took 2-6 s
per process on a 2-core machine (its package imports all its submodules), longer than torch
itself and as long as obfuscating 100 frames. Obfuscation needs no training machinery, so this
module rebuilds the same network from plain ``torch.nn`` layers with the **same parameter names
and the same operations in the same order** (convolution then PReLU; residual ``conv(x) + x``;
transposed convolution with ``padding=1, output_padding=stride-1``; mean latent or
``mu + exp(logvar / 2) * noise``; sigmoid), so it loads the saved state dict as it is and gives
the same float32 bits as the MONAI model: ``tests/test_vae.py`` holds that for every layout
option of :class:`~medcloak.obfuscation.vae_config.VAEConfig`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from medcloak.obfuscation.vae_config import VAEConfig

__all__ = ["InferenceVAE", "inference_vae_from_bytes", "build_layers"]

_LOGVAR_RANGE = (-30.0, 20.0)  # as medcloak.obfuscation.vae


class _Act(nn.Module):
    """MONAI's ``ADN`` holding only its activation ``A`` (no norm, no dropout).

    Without autograd (obfuscation runs under ``torch.inference_mode``) the single-weight PReLU is
    applied in place as ``leaky_relu_(x, weight)``: the same product ``weight * x`` for ``x < 0``
    (same bits), written over the convolution's fresh output instead of a new 4 MiB tensor at
    256 px (13.4 -> 11.8 ms per 256 px frame on one thread of the benchmark machine).
    """

    def __init__(self):
        super().__init__()
        self.A = nn.PReLU()

    def forward(self, x: Tensor) -> Tensor:
        if self.A.weight.numel() == 1 and not torch.is_grad_enabled():
            return torch.nn.functional.leaky_relu_(x, float(self.A.weight))
        return self.A(x)


class _Conv(nn.Module):
    """MONAI's ``Convolution(act="PRELU", norm=None)``: ``conv`` then ``adn``."""

    def __init__(self, cin: int, cout: int, *, strides: int = 1, kernel: int = 3, transposed: bool = False):
        super().__init__()
        if transposed:
            self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride=strides, padding=1, output_padding=strides - 1)
        else:
            self.conv = nn.Conv2d(cin, cout, kernel, stride=strides, padding=(kernel - 1) // 2)
        self.adn = _Act()

    def forward(self, x: Tensor) -> Tensor:
        return self.adn(self.conv(x))


class _Res(nn.Module):
    """MONAI's ``ResidualUnit(c, c, subunits=2, norm=None)``: ``conv(x) + x``."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Sequential()
        self.conv.add_module("unit0", _Conv(c, c))
        self.conv.add_module("unit1", _Conv(c, c))
        self.residual = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        res = self.residual(x)
        cx = self.conv(x)
        return cx + res


def build_layers(config: VAEConfig, conv: Callable[..., nn.Module],
                 res: Callable[[int], nn.Module]) -> tuple[nn.Sequential, nn.Conv2d, nn.Sequential]:
    """The VAE's ``encoder``, ``to_latent`` and ``decoder`` for ``config``, made of the block factories
    ``conv(cin, cout, *, strides=1, kernel=3, transposed=False)`` and ``res(c)``, in one fixed order
    (which fixes the parameter names and, under a torch seed, the initial weights). Shared by the MONAI
    training model (:class:`medcloak.obfuscation.vae.VAE`) and :class:`InferenceVAE`."""
    c, d, lc = config.base_channels, config.downsamples, config.latent_channels
    chans = [c * 2**i for i in range(d + 1)]
    enc: list[nn.Module] = [conv(1, chans[0])]
    for i in range(d):
        enc.append(conv(chans[i], chans[i + 1], strides=2))
        enc += [res(chans[i + 1]) for _ in range(config.residual_units)]
    to_latent = nn.Conv2d(chans[d], 2 * lc, kernel_size=1)
    dec: list[nn.Module] = [conv(lc, chans[d], kernel=1)]
    for i in reversed(range(d)):
        dec += [res(chans[i + 1]) for _ in range(config.residual_units)]
        if config.upsample == "nearest":
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), conv(chans[i + 1], chans[i])]
        else:
            dec.append(conv(chans[i + 1], chans[i], strides=2, transposed=True))
    dec += [conv(chans[0], chans[0]), nn.Conv2d(chans[0], 1, kernel_size=1)]
    return nn.Sequential(*enc), to_latent, nn.Sequential(*dec)


class InferenceVAE(nn.Module):
    """The network of :class:`medcloak.obfuscation.vae.VAE` for ``config``, in plain torch, eval mode.

    Same module tree (``encoder``, ``to_latent``, ``decoder``) and parameter names, so
    ``load_state_dict`` takes a saved VAE's weights unchanged. :func:`medcloak.obfuscation.vae.reconstruct`
    runs it like the MONAI model (``encode`` / ``decode``).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.to_latent, self.decoder = build_layers(config, _Conv, _Res)
        self.eval()

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` as :meth:`medcloak.obfuscation.vae.VAE.encode`."""
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(*_LOGVAR_RANGE)

    def decode(self, z: Tensor) -> Tensor:
        """Frames in [0, 1] as :meth:`medcloak.obfuscation.vae.VAE.decode`."""
        return torch.sigmoid(self.decoder(z))


def inference_vae_from_bytes(data: bytes) -> InferenceVAE:
    """The :class:`InferenceVAE` of :func:`medcloak.obfuscation.vae.vae_to_bytes` output (strict
    state-dict load: every saved parameter has its place, and no other)."""
    from medcloak.errors import MedcloakError
    from medcloak.obfuscation.vae import vae_payload

    config, state = vae_payload(data)
    model = InferenceVAE(config)
    try:
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        raise MedcloakError(f"corrupt medcloak VAE ({type(exc).__name__}: {exc})") from None
    return model.eval()
