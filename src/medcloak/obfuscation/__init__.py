"""Obfuscation: the :class:`Scheme` plug-ins and their registry, the paper's engine, batch runs.

* :mod:`.scheme` -- the :class:`Scheme` interface, :func:`get_scheme`, :func:`load_scheme`;
* :mod:`.paper` -- the scheme ``paper`` (VAE + keyed map; engine :mod:`.pipeline`, :mod:`.vae`,
  :mod:`.mapping`);
* :mod:`.batch` -- a whole archive, resumable, with a manifest.
"""

from medcloak.obfuscation.scheme import Scheme, get_scheme, load_scheme, make_scheme, register, scheme_names

__all__ = ["Scheme", "get_scheme", "load_scheme", "make_scheme", "register", "scheme_names"]
