"""The keyed random non-bijective intensity mapping.

A frame in [0, 1] is quantised to ``levels`` equally spaced grey levels (``round(x * (L - 1))``)
and every level is replaced by an entry of a look-up table. The table's ``L`` entries are drawn
independently and uniformly, **with replacement**, from ``out_levels`` output levels using the
key stream (rejection sampling: no modulo bias). Several input levels therefore share one output
level and the map cannot be inverted exactly; a table that happens to be injective (for
``out_levels == levels``: a permutation, probability ``L! / L**L``) is redrawn deterministically
with the next attempt counter, so a returned table is never bijective.

Expected collisions: an output level is hit by none of the ``L`` draws with probability
``(1 - 1/M)**L`` (``M = out_levels``), so the expected fraction of output levels never used is

    E[unused / M] = (1 - 1/M)**L,       e.g. (1 - 1/256)**256 = 0.3672 ~ 1/e for L = M = 256,

i.e. about 37 % of the 256 levels merge into others and only about 162 distinct output values
remain (:func:`expected_unused_fraction`, checked empirically over many keys in the tests).

Applying the map is one quantisation and one indexed lookup into a small float32 table
(``table[q]``), i.e. memory speed. The output is float32 in [0, 1]: ``level / (out_levels - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcloak.errors import MedcloakError

__all__ = [
    "IntensityMap",
    "check_levels",
    "draw_table",
    "quantise",
    "apply_table",
    "expected_unused_fraction",
    "is_injective",
    "MAP_LABEL",
    "MAX_LEVELS",
]

MAP_LABEL = "intensity-map"
MAX_LEVELS = 65536
_MAX_ATTEMPTS = 1000


def check_levels(levels: int, out_levels: int | None) -> tuple[int, int]:
    """``(levels, out_levels)`` as ints (``out_levels`` defaults to ``levels``), each in 2..MAX_LEVELS."""
    levels = int(levels)
    out_levels = levels if out_levels is None else int(out_levels)
    if not 2 <= levels <= MAX_LEVELS:
        raise MedcloakError(f"levels must be in 2..{MAX_LEVELS}, got {levels}")
    if not 2 <= out_levels <= MAX_LEVELS:
        raise MedcloakError(f"out_levels must be in 2..{MAX_LEVELS}, got {out_levels}")
    return levels, out_levels


def is_injective(table: np.ndarray) -> bool:
    """True if no two entries of ``table`` are equal (the map could be inverted exactly)."""
    t = np.asarray(table)
    return np.unique(t).size == t.size


def expected_unused_fraction(levels: int = 256, out_levels: int | None = None) -> float:
    """Expected fraction of the ``out_levels`` output levels that no input level maps to.

    Parameters
    ----------
    levels : int
        ``L``, the number of input (quantisation) levels = number of table draws.
    out_levels : int, optional
        ``M``, the number of output levels (default ``L``).

    Returns
    -------
    float
        ``(1 - 1/M)**L``; 0.3672 for ``L = M = 256`` (close to ``1/e``).

    Examples
    --------
    >>> round(expected_unused_fraction(256), 4)
    0.3672
    """
    levels, out_levels = check_levels(levels, out_levels)
    return float((1.0 - 1.0 / out_levels) ** levels)


def draw_table(key, *, levels: int = 256, out_levels: int | None = None) -> np.ndarray:
    """Draw the key's look-up table.

    Parameters
    ----------
    key : medcloak.keys.Key
        The secret key; the table comes from ``key.integers("intensity-map", ...)`` under the
        context ``b"levels=L;out_levels=M;attempt=k"``.
    levels : int
        Number of input levels ``L`` (2..65536).
    out_levels : int, optional
        Number of output levels ``M`` (2..65536, default ``L``).

    Returns
    -------
    ndarray, uint16 or uint32 (L,)
        Output level of every input level, each in ``[0, M)``; never injective.

    Raises
    ------
    MedcloakError
        If no non-injective table is found in 1000 attempts (only possible when ``M`` is far
        larger than ``L**2``; choose fewer output levels).
    """
    levels, out_levels = check_levels(levels, out_levels)
    dtype = np.uint16 if out_levels <= 65536 else np.uint32
    for attempt in range(_MAX_ATTEMPTS):
        ctx = f"levels={levels};out_levels={out_levels};attempt={attempt}".encode()
        table = key.integers(MAP_LABEL, levels, out_levels, context=ctx).astype(dtype)
        if not is_injective(table):
            return table
    raise MedcloakError(
        f"could not draw a non-bijective table with levels={levels}, out_levels={out_levels}; use fewer output levels"
    )


def quantise(frames: np.ndarray, levels: int) -> np.ndarray:
    """Quantise [0, 1] values to integer levels ``0..levels-1`` (round to nearest).

    ``q = round(clip(x, 0, 1) * (levels - 1))``, so 8-bit inputs ``k / 255`` map to ``k`` at
    ``levels = 256``. Returns ``uint16`` (or ``int32`` above 65536 levels) of the input's shape.
    """
    levels = int(levels)
    q = np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0)  # a new array: the input is never written
    q *= np.float32(levels - 1)
    np.rint(q, out=q)
    return q.astype(np.uint16 if levels <= 65536 else np.int32)


def apply_table(frames: np.ndarray, table: np.ndarray, *, out_levels: int | None = None) -> np.ndarray:
    """Quantise ``frames`` to ``len(table)`` levels and look each level up in ``table``.

    Returns float32 of the input's shape in [0, 1] (``table[q] / (out_levels - 1)``).
    """
    table = np.asarray(table)
    levels = table.size
    out_levels = int(table.max()) + 1 if out_levels is None else int(out_levels)
    lut = table.astype(np.float32) / np.float32(max(out_levels - 1, 1))
    return np.take(lut, quantise(frames, levels))


@dataclass(frozen=True)
class IntensityMap:
    """A drawn look-up table and its sizes; :meth:`__call__` applies it.

    Create with :meth:`from_key`. ``table`` holds output levels (ints), ``lut`` the same as
    float32 values in [0, 1].
    """

    table: np.ndarray
    levels: int
    out_levels: int

    @classmethod
    def from_key(cls, key, *, levels: int = 256, out_levels: int | None = None) -> "IntensityMap":
        """Draw the key's table (see :func:`draw_table`)."""
        levels, out_levels = check_levels(levels, out_levels)
        return cls(draw_table(key, levels=levels, out_levels=out_levels), levels, out_levels)

    def __post_init__(self) -> None:
        if self.table.shape != (self.levels,):
            raise MedcloakError(f"table must have {self.levels} entries, got shape {self.table.shape}")
        self.table.setflags(write=False)
        lut = (self.table.astype(np.float32) / np.float32(self.out_levels - 1)).astype(np.float32)
        lut.setflags(write=False)
        object.__setattr__(self, "lut", lut)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Map frames (any shape, [0, 1]) to float32 in [0, 1] of the same shape."""
        return np.take(self.lut, quantise(frames, self.levels))

    def code_table(self, bits: int) -> np.ndarray:
        """The integer a ``bits``-bit image file stores for each input level: ``to_uint(lut, bits)``
        (:func:`medcloak.io.images.to_uint`), uint8 or uint16, one entry per input level."""
        cache = self.__dict__.setdefault("_code_tables", {})
        if bits not in cache:
            from medcloak.io.images import to_uint

            table = to_uint(self.lut, bits=bits)
            table.setflags(write=False)
            cache[bits] = table
        return cache[bits]

    def codes(self, frames: np.ndarray, *, bits: int = 8) -> np.ndarray:
        """``to_uint(self(frames), bits)`` in one look-up: quantise, then index :meth:`code_table`.

        The same integers as mapping to float32 and converting (both are elementwise functions of
        the input level), without the float32 frame and the float64 conversion of ``to_uint``:
        the fast path of ``medcloak obfuscate`` to PNG.
        """
        return np.take(self.code_table(bits), quantise(frames, self.levels))

    @property
    def used_levels(self) -> int:
        """Number of distinct output levels the table reaches."""
        return int(np.unique(self.table).size)

    def __repr__(self) -> str:  # never print the table: it is secret material
        return f"IntensityMap(levels={self.levels}, out_levels={self.out_levels}, used_levels={self.used_levels})"
