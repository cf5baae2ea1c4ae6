"""Obfuscation: the :class:`Scheme` plug-ins and their registry, the paper's engine, batch runs.

* :mod:`.scheme` -- the :class:`Scheme` interface, :func:`get_scheme`, :func:`load_scheme`;
* :mod:`.paper` -- the scheme ``paper`` (VAE + keyed map; engine :mod:`.pipeline`, :mod:`.vae`,
  :mod:`.mapping`);
* the published rivals, one module each (source and our choices in each docstring):
  :mod:`.blockwise`, :mod:`.randenc`, :mod:`.pixelate`, :mod:`.blur`, :mod:`.svd`,
  :mod:`.bottleneck` (helpers shared by them: :mod:`._zoo`);
* :mod:`.batch` -- a whole archive, resumable, with a manifest.
"""

from medcloak.obfuscation.scheme import Scheme, get_scheme, load_scheme, make_scheme, register, scheme_names

__all__ = ["Scheme", "get_scheme", "load_scheme", "make_scheme", "register", "scheme_names"]
