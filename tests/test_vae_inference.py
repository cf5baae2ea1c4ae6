"""The plain-torch inference VAE is the MONAI-built VAE, bit for bit, and obfuscating with a
loaded model imports neither MONAI (workers) nor torch (the main process's model check)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from medcloak.keys import Key
from medcloak.obfuscation.vae import VAE, VAEConfig, reconstruct, vae_to_bytes
from medcloak.obfuscation.vae_inference import InferenceVAE, inference_vae_from_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = [VAEConfig(base_channels=4, latent_channels=2),
           VAEConfig(base_channels=4, latent_channels=3, downsamples=1, residual_units=1, upsample="nearest"),
           VAEConfig(base_channels=2, latent_channels=2, downsamples=3, residual_units=2)]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "fidelity-like", "deep"])
def test_inference_vae_gives_the_monai_vae_bits(config):
    torch.manual_seed(0)
    monai_vae = VAE(config).eval()
    with torch.no_grad():  # random, not initial, weights: PReLU slopes and biases all differ
        for p in monai_vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    twin = inference_vae_from_bytes(vae_to_bytes(monai_vae))
    assert isinstance(twin, InferenceVAE)
    assert list(twin.state_dict()) == list(monai_vae.state_dict())
    x = np.random.default_rng(1).random((3, 32, 32), dtype=np.float32)
    noise = np.random.default_rng(2).standard_normal((3, config.latent_channels, *(32 // 2**config.downsamples,) * 2))
    for cl in (False, True):
        a = monai_vae.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        b = twin.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        for nz in (None, noise.astype(np.float32)):
            got = reconstruct(b, x, noise=nz, batch_size=1, channels_last=cl)
            assert got.tobytes() == reconstruct(a, x, noise=nz, batch_size=1, channels_last=cl).tobytes()


def test_loaded_obfuscator_runs_without_monai_and_its_check_without_torch(tmp_path):
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator

    key = Key(bytes(range(32)))
    obf = Obfuscator(key, config=ObfuscationConfig(latent="sampled",
                                                   vae=VAEConfig(base_channels=4, latent_channels=2, epochs=1)))
    x = np.random.default_rng(0).random((2, 16, 16), dtype=np.float32)
    obf.fit(x, progress=False)
    obf.save(tmp_path / "m")
    expect = obf.obfuscate(x)  # the fitted (MONAI) network
    np.save(tmp_path / "x.npy", x)
    code = f"""
import sys, numpy as np, torch
torch.set_num_threads(1)
from medcloak.keys import Key
from medcloak.obfuscation.scheme import load_scheme
s = load_scheme({str(tmp_path / 'm')!r}, Key(bytes(range(32))))
assert 'monai' not in sys.modules
np.save({str(tmp_path / 'y.npy')!r}, s.apply(np.load({str(tmp_path / 'x.npy')!r})))
assert 'monai' not in sys.modules, 'obfuscating imported MONAI'
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.load(tmp_path / "y.npy").tobytes() == expect.tobytes()
    check = f"""
import sys
from medcloak.keys import Key
from medcloak.obfuscation.batch_worker import make_batch_scheme
s = make_batch_scheme(Key(bytes(range(32))), {str(tmp_path / 'm')!r})
print(s.model_fingerprint)
assert 'torch' not in sys.modules, 'checking a model folder imported torch'
"""
    out = subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, text=True).stdout
    assert out.strip() == obf.model_fingerprint


def test_prelu_runs_in_place_only_without_autograd():
    """The in-place activation (a speed-up) is what the bit-equality test above exercises; with
    autograd on, the module must not overwrite its input."""
    from medcloak.obfuscation.vae_inference import _Act

    act = _Act()
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    with torch.inference_mode():
        y = x.clone()
        assert act(y) is y and torch.equal(y, torch.nn.functional.prelu(x, act.A.weight))
    y = x.clone()
    assert act(y) is not y and torch.equal(y, x)


def test_keep_freed_memory_sets_glibc_thresholds_once():
    import platform

    from medcloak.obfuscation import alloc

    first = alloc.keep_freed_memory()
    assert alloc.keep_freed_memory() is first  # once per process
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
