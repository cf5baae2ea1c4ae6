"""medcloak: keyed obfuscation of medical images for cloud deep learning.

The method of Popescu et al. 2022 (VAE + keyed random non-bijective intensity mapping),
with the study that measures how useful and how private the result is.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from medcloak.errors import MedcloakError

try:
    __version__ = _version("medcloak")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["MedcloakError", "__version__"]
