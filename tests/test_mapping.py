"""The keyed non-bijective intensity mapping."""

import numpy as np
import pytest

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.mapping import (
    IntensityMap,
    apply_table,
    draw_table,
    expected_unused_fraction,
    is_injective,
    quantise,
)


def keys(n, start=0):
    return [Key(i.to_bytes(32, "big")) for i in range(start, start + n)]


def test_table_deterministic_in_range_and_never_injective():
    for key in keys(50):
        t = draw_table(key)
        assert t.shape == (256,) and t.dtype == np.uint16
        assert t.min() >= 0 and t.max() < 256
        assert not is_injective(t)
        assert np.array_equal(t, draw_table(key))
    t1, t2 = draw_table(Key(b"\x01" * 32)), draw_table(Key(b"\x02" * 32))
    assert (t1 != t2).mean() > 0.9


def test_permutation_draws_are_redrawn():
    # with 2 levels half the draws are permutations ([0, 1] or [1, 0]); all must be redrawn
    tables = [draw_table(k, levels=2) for k in keys(64)]
    assert all(t[0] == t[1] for t in tables)
    assert {int(t[0]) for t in tables} == {0, 1}
    # fewer output levels than input levels can never be injective
    t = draw_table(Key(b"\x05" * 32), levels=64, out_levels=8)
    assert t.max() < 8 and not is_injective(t)


# tolerance ~5 standard errors of the mean of 300 keys (measured per-key std: 0.020, 0.057, 0.016)
@pytest.mark.parametrize("levels,out_levels,tol", [(256, None, 0.006), (32, 32, 0.016), (256, 64, 0.005)])
def test_merge_rate_matches_theory_over_many_keys(levels, out_levels, tol):
    m = levels if out_levels is None else out_levels
    unused = [1 - np.unique(draw_table(k, levels=levels, out_levels=out_levels)).size / m for k in keys(300, 1000)]
    expected = expected_unused_fraction(levels, out_levels)
    assert abs(np.mean(unused) - expected) < tol, (np.mean(unused), expected)


def test_expected_unused_fraction_is_about_one_over_e():
    assert expected_unused_fraction(256) == pytest.approx((255 / 256) ** 256)
    assert expected_unused_fraction(256) == pytest.approx(0.3672, abs=1e-4)
    assert abs(expected_unused_fraction(65536) - np.exp(-1)) < 1e-4


def test_quantise_rounds_to_nearest_level():
    k = np.arange(256) / 255.0
    assert np.array_equal(quantise(k, 256), np.arange(256))
    assert np.array_equal(quantise(np.array([-0.5, 0.0, 0.49 / 31, 0.51 / 31, 1.0, 2.0]), 32), [0, 0, 0, 1, 31, 31])


def test_apply_values_shape_and_key_sensitivity():
    rng = np.random.default_rng(0)
    img = rng.random((3, 32, 32)).astype(np.float32)
    m1 = IntensityMap.from_key(Key(b"\x07" * 32))
    y = m1(img)
    assert y.shape == img.shape and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 1
    assert set(np.unique(y)) <= set(np.unique(m1.lut))
    assert np.array_equal(y, m1(img)) and np.array_equal(y[1], m1(img[1]))
    assert np.array_equal(y, apply_table(img, m1.table, out_levels=256))
    assert np.allclose(y * 255, np.rint(y * 255), atol=1e-4)  # exact output levels k / 255
    m2 = IntensityMap.from_key(Key(b"\x08" * 32))
    assert (m2(img) != y).mean() >= 0.9
    # non-bijective: distinct inputs collide, so the output has fewer distinct values
    ramp = np.arange(256, dtype=np.float32) / 255
    assert np.unique(m1(ramp)).size == m1.used_levels < 256


def test_out_levels_and_bad_options():
    m = IntensityMap.from_key(Key(b"\x09" * 32), levels=32, out_levels=16)
    assert m.table.max() < 16
    y = m(np.linspace(0, 1, 1000))
    assert np.allclose(y * 15, np.rint(y * 15), atol=1e-5)
    for bad in ({"levels": 1}, {"levels": 70000}, {"out_levels": 1}):
        with pytest.raises(MedcloakError):
            draw_table(Key(b"\x09" * 32), **bad)


def test_repr_hides_the_table():
    m = IntensityMap.from_key(Key(b"\x0a" * 32))
    r = repr(m)
    assert "levels=256" in r and str(list(m.table[:4])) not in r and "[" not in r
    with pytest.raises(ValueError):
        m.table[0] = 0  # read-only
