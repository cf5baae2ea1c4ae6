"""Leave the ``medcloak`` process without tearing the interpreter down.

A process that imported torch spends a third of a second at exit freeing module objects one by
one (measured on the 2-core machine, 3 runs each: ``python -c "import torch"`` 1.30-1.47 s, the
same ending in ``os._exit`` 0.98-1.04 s). For a command that has finished, that is time the user
waits for nothing: every output it wrote is closed (and, for ``obfuscate``, fsynced) before the
command returns, and a benchmark that counts start-up counts it too.

:func:`exit_now` keeps what the interpreter's own exit does that matters: it leaves the normal way
(``sys.exit``) while a non-daemon thread still runs, since the interpreter would wait for it; it
runs the :mod:`atexit` handlers (multiprocessing's clean-up, ``logging.shutdown``,
``weakref.finalize`` objects such as temporary folders, coverage's data file) and flushes
``sys.stdout`` and ``sys.stderr``. What it skips is the teardown of modules and the last garbage
collection: an object that flushes data only in ``__del__`` while a module global holds it would
lose that data, and the project keeps no such object (files are written with ``with`` blocks or
closed explicitly).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

__all__ = ["exit_now"]


def exit_now(code: int) -> None:
    """Exit with ``code`` after the :mod:`atexit` handlers ran and stdio was flushed."""
    code = int(code)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # the interpreter waits for those threads; so do we
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing left to deliver
                pass
        os._exit(code & 0xFF)
