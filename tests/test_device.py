"""The training-device choice: names, errors, the process-wide default and CPU hand-back."""

import numpy as np
import pytest
import torch

from medcloak.device import model_device, resolve_device, training_device, use_device
from medcloak.errors import MedcloakError


def test_names_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MedcloakError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_refused_without_gpu():
    with pytest.raises(MedcloakError, match="no CUDA"):
        resolve_device("cuda")


def test_default_is_cpu_and_env_and_context(monkeypatch):
    monkeypatch.delenv("MEDCLOAK_DEVICE", raising=False)
    assert training_device() == torch.device("cpu")
    monkeypatch.setenv("MEDCLOAK_DEVICE", "bogus")
    with pytest.raises(MedcloakError):
        training_device()
    with use_device("cpu") as dev:  # the context wins over the environment
        assert dev == torch.device("cpu") and training_device() == dev
    with pytest.raises(MedcloakError):
        training_device()


def test_training_functions_take_device_and_return_cpu_models(one_torch_thread):
    from medcloak.attacks.unet import NetConfig, predict, train_network
    from medcloak.learn.recipe import Recipe
    from medcloak.learn.train import train_classifier

    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16), dtype=np.float32)
    y = ["a", "b"] * 4
    res = train_classifier(x, y, x, y, recipe=Recipe(max_epochs=1, batch_size=4), progress=False, device="cpu")
    assert model_device(res.model) == torch.device("cpu")
    net = train_network(x, x, NetConfig(channels=(4, 8), steps=2, batch_size=4), progress=False,
                        device="auto")
    assert model_device(net) == torch.device("cpu")
    assert predict(net, x).shape == x.shape
