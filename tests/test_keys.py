"""Keys: HKDF derivations (fixed vectors, cross-checked), key streams, key files and their permissions."""

import base64
import hashlib
import hmac
import os
import stat
import struct

import numpy as np
import pytest

from medcloak.cli import main
from medcloak.errors import MedcloakError
from medcloak.keys import Key

SECRET = bytes(range(32))
# Computed once with this implementation and frozen: changing the derivation silently would change
# every obfuscation made so far.
VECTOR_DERIVE = "ae81d2e61d1e8cb8c9f8567921d835493de601da4c38fb679469fd5a974afc603236645ef41c863933a4"
VECTOR_FINGERPRINT = "1a2d7feb373582d32c041d79f872dcc9f7b03258661f46e5fe807a06e43814a0"
VECTOR_STREAM = "6a558d3e3f114190e31debcc8b1cf449"
VECTOR_UID_SALT = "91c135f1efe7465be819f30f5164cbf3"


# -- independent reference implementations (RFC 5869 HKDF, RFC 8439 ChaCha20) ------------------
def ref_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def ref_chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    def rotl(v, c):
        return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))

    def qr(s, a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)  # noqa: E702
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)  # noqa: E702
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)  # noqa: E702
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)  # noqa: E702

    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *struct.unpack("<8I", key), counter,
            *struct.unpack("<3I", nonce)]
    s = list(init)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                           (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            qr(s, a, b, c, d)
    return struct.pack("<16I", *((x + y) & 0xFFFFFFFF for x, y in zip(s, init)))


def test_hkdf_fixed_vector_and_independent_implementation():
    key = Key(SECRET)
    got = key.derive("test-vector", 42, context=b"ctx")
    assert got.hex() == VECTOR_DERIVE
    info = b"medcloak/v1/derive\x00test-vector\x00ctx"
    assert got == ref_hkdf(SECRET, b"medcloak/hkdf/v1", info, 42)
    assert key.fingerprint == VECTOR_FINGERPRINT
    assert key.fingerprint == ref_hkdf(SECRET, b"medcloak/hkdf/v1", b"medcloak/v1/fingerprint", 32).hex()
    assert key.derive("dicom-uid-salt", 16).hex() == VECTOR_UID_SALT


def test_stream_is_chacha20_under_an_hkdf_subkey():
    key = Key(SECRET)
    sub = ref_hkdf(SECRET, b"medcloak/hkdf/v1", b"medcloak/v1/stream\x00test-vector\x00", 32)
    ref = ref_chacha20_block(sub, 0, b"\x00" * 12) + ref_chacha20_block(sub, 1, b"\x00" * 12)
    ks = key.stream("test-vector")
    assert ks.read(16).hex() == VECTOR_STREAM
    assert VECTOR_STREAM + ks.read(112).hex() == ref.hex()
    # chunked reads continue the same stream
    a = key.stream("x", context=b"c")
    assert a.read(7) + a.read(100) == key.stream("x", context=b"c").read(107)


def test_labels_and_contexts_are_separated():
    key = Key(SECRET)
    outs = {key.derive("a", 32), key.derive("b", 32), key.derive("a", 32, context=b"1"),
            key.derive("a", 32, context=b"2"), key.stream("a").read(32)}
    assert len(outs) == 5
    assert Key(bytes(32)).derive("a", 32) != key.derive("a", 32)
    with pytest.raises(MedcloakError):
        key.derive("bad\x00label", 16)


def test_normal_and_integers_are_deterministic_and_well_distributed():
    key = Key(SECRET)
    z = key.normal("noise", (200, 100), context=b"f")
    assert z.dtype == np.float32 and z.shape == (200, 100)
    assert np.array_equal(z, key.normal("noise", (200, 100), context=b"f"))
    assert not np.array_equal(z, key.normal("noise", (200, 100), context=b"g"))
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1) < 0.03
    assert abs(float((np.abs(z) < 1).mean()) - 0.6827) < 0.02  # Gaussian, not uniform
    odd = key.normal("noise", 7)
    assert odd.shape == (7,) and np.isfinite(odd).all()
    # rejection sampling: uniform on [0, high) with no modulo bias (high = 3 * 2**30 would be
    # biased 2:1 towards [0, 2**30) by a plain modulo of 32-bit words)
    high = 3 * 2**30
    v = key.integers("ints", 30000, high)
    assert v.min() >= 0 and v.max() < high
    assert abs(float((v < 2**30).mean()) - 1 / 3) < 0.02
    assert np.array_equal(v[:100], key.integers("ints", 100, high))


def test_key_file_mode_0600_roundtrip_and_no_overwrite(tmp_path):
    old = os.umask(0)  # even a permissive umask gives 0600
    try:
        path = tmp_path / "k.key"
        key = Key.generate()
        key.save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = Key.load(path)
    assert back == key and back.fingerprint == key.fingerprint
    assert back.derive("x", 16) == key.derive("x", 16)
    before = path.read_bytes()
    with pytest.raises(MedcloakError, match="never overwritten"):
        Key.generate().save(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_refuses_key_readable_by_others(tmp_path, mode):
    path = tmp_path / "k.key"
    Key.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(MedcloakError, match=f"chmod 600 {path}"):
        Key.load(path)


def test_damaged_key_files(tmp_path):
    path = tmp_path / "k.key"
    Key(SECRET).save(path)
    text = path.read_text()
    for bad in (text.replace(VECTOR_FINGERPRINT, "0" * 64), "{}", "not json", text.replace('"version": 1', '"version": 9')):
        p = tmp_path / f"bad{hash(bad) & 0xFFFF}.key"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, bad.encode())
        os.close(fd)
        with pytest.raises(MedcloakError) as err:
            Key.load(p)
        assert SECRET.hex() not in str(err.value)
    with pytest.raises(MedcloakError, match="not found"):
        Key.load(tmp_path / "missing.key")


def _secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("=")]


def test_secret_not_in_repr_or_errors(tmp_path):
    key = Key(SECRET)
    texts = [repr(key), str(key), f"{key}", repr(key.stream("a")), key.fingerprint, str(key.params)]
    with pytest.raises(MedcloakError) as err:
        key.derive("", 10)
    texts.append(str(err.value))
    for t in texts:
        for form in _secret_forms(SECRET):
            assert form not in t


def test_cli_keygen_and_key_info(tmp_path, capsys):
    path = tmp_path / "owner.key"
    assert main(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = Key.load(path)
    assert main(["key-info", str(path)]) == 0
    out = capsys.readouterr()
    assert key.short_fingerprint in out.out and "HKDF-SHA256" in out.out
    for form in _secret_forms(key._secret):
        assert form not in out.out + out.err
    assert main(["keygen", str(path)]) == 2  # never overwrites
    os.chmod(path, 0o644)
    assert main(["key-info", str(path)]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_pseudonym_is_keyed_stable_and_label_separated():
    a, b = Key.generate(), Key.generate()
    name = "Patients/DOE_JOHN_MRN123/frame1.png"
    p = a.pseudonym("output-name", name)
    assert p == a.pseudonym("output-name", name) and len(p) == 16
    assert p != b.pseudonym("output-name", name)  # another key: unrelated
    assert p != a.pseudonym("patient", name)  # another label: unrelated
    assert "DOE" not in p and all(c in "0123456789abcdef" for c in p)
    # undecodable (surrogate-escaped) file names work too
    assert len(a.pseudonym("output-name", "caf\udce9.png")) == 16
    with pytest.raises(MedcloakError):
        a.pseudonym("patient", name, length=4)


def test_pseudonym_sub_keys_are_cached_per_label_with_the_same_values():
    """Each label's HMAC sub-key is derived once per key (a batch names every file several
    times); the values stay HMAC-SHA256 under ``derive(label, 32)``, and a fixed key's pseudonym is
    the one it always was."""
    import hashlib
    import hmac

    k = Key(bytes(range(32)))
    for label, value in [("input", "a/b.png"), ("output-name", "a/b.png\x000"), ("input", "c.dcm")]:
        expect = hmac.new(k.derive(label, 32), value.encode(), hashlib.sha256).hexdigest()[:16]
        assert k.pseudonym(label, value) == expect == k.pseudonym(label, value)
    assert k.pseudonym("input", "a/b.png") != k.pseudonym("output-name", "a/b.png")
    assert Key(bytes(32)).pseudonym("input", "a/b.png") != k.pseudonym("input", "a/b.png")  # not shared across keys
