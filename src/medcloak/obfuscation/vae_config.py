"""The VAE's hyper-parameters and latent geometry, importable without torch.

The batch runner's main process validates a model folder (config, key, authentication tag)
without importing torch or MONAI (seconds of start-up per process on a 2-core machine); the
network itself lives in :mod:`medcloak.obfuscation.vae`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from medcloak.errors import MedcloakError

__all__ = ["VAEConfig", "latent_shape"]


@dataclass(frozen=True)
class VAEConfig:
    """All hyper-parameters of the VAE and of its training.

    The defaults are the setting measured by ``benchmarks/vae_fidelity.py`` on 128x128
    semi-synthetic frames (CPU-friendly: a small network, many small batches, and a squared
    error that weights dark thin structures up so that the vessels are kept).

    Parameters
    ----------
    base_channels : int
        Feature maps at full resolution; doubled at every downsampling.
    latent_channels : int
        Channels of the spatial latent.
    downsamples : int
        Number of stride-2 stages; the latent is ``(latent_channels, H / 2**d, W / 2**d)``.
    residual_units : int
        Residual units per resolution stage (encoder and decoder each).
    beta : float
        Weight of the KL term (per-frame sums of squared error and of KL are compared).
    vessel_weight : float
        Extra weight of the squared error on dark thin structures: pixel weight
        ``1 + vessel_weight * tophat(x)``, where ``tophat`` is a normalised black top-hat of
        the input frame (0 elsewhere). 0 gives the plain Gaussian (MSE) likelihood.
    ssim_weight : float
        Weight of an added ``(1 - SSIM)`` term (Gaussian window, sigma 1.5), per pixel,
        i.e. scaled by ``H * W`` to be comparable to the summed squared error.
    upsample : {"transposed", "nearest"}
        Decoder upsampling: stride-2 transposed convolution, or nearest-neighbour x2 followed
        by a 3x3 convolution (no checkerboard artefacts).
    epochs, batch_size, lr : int, int, float
        Adam training schedule.
    seed : int
        Seed of weight initialisation, shuffling and the training reparameterisation noise.
    """

    base_channels: int = 16
    latent_channels: int = 8
    downsamples: int = 2
    residual_units: int = 0
    beta: float = 1e-3
    vessel_weight: float = 5.0
    ssim_weight: float = 0.0
    upsample: str = "transposed"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("base_channels", "latent_channels", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise MedcloakError(f"VAE config: {name} must be >= 1, got {getattr(self, name)}")
        if self.downsamples < 0 or self.residual_units < 0:
            raise MedcloakError("VAE config: downsamples and residual_units must be >= 0")
        if self.beta < 0 or self.vessel_weight < 0 or self.ssim_weight < 0 or self.lr <= 0:
            raise MedcloakError("VAE config: beta, vessel_weight, ssim_weight must be >= 0 and lr > 0")
        if self.upsample not in ("transposed", "nearest"):
            raise MedcloakError(f"VAE config: upsample must be 'transposed' or 'nearest', got {self.upsample!r}")

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`MedcloakError`."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise MedcloakError(f"VAE config: unknown field(s) {', '.join(unknown)}")
        casts = {f.name: type(getattr(cls(), f.name)) for f in fields(cls)}
        try:
            return cls(**{k: casts[k](v) for k, v in d.items()})
        except (TypeError, ValueError) as exc:
            raise MedcloakError(f"VAE config: bad value ({exc})") from None


def latent_shape(config: VAEConfig, height: int, width: int) -> tuple[int, int, int]:
    """Shape ``(C, h, w)`` of one frame's latent.

    Raises
    ------
    MedcloakError
        If ``height`` or ``width`` is not divisible by ``2**config.downsamples``.
    """
    f = 2**config.downsamples
    if height < f or width < f or height % f or width % f:
        raise MedcloakError(
            f"frame size {height}x{width} must be a positive multiple of {f} "
            f"(2**downsamples, downsamples={config.downsamples})"
        )
    return (config.latent_channels, height // f, width // f)
