"""Secret keys: generation, key files, HKDF sub-keys and keyed random streams.

A :class:`Key` holds a 256-bit secret drawn from :mod:`secrets`. Every piece of protective
randomness in medcloak (the intensity look-up table, VAE latent noise, the DICOM UID salt) is
derived from that secret with HKDF-SHA256 (RFC 5869) under a distinct label, and long outputs
come from a ChaCha20 key stream keyed by an HKDF sub-key. Nothing protective is ever drawn from
a numpy or torch seed.

Key file (JSON, mode 0600, never overwritten)::

    {"format": "medcloak-key", "version": 1, "created": "2025-01-01T00:00:00Z",
     "fingerprint": "<64 hex>", "params": {...}, "secret": "<64 hex>"}

The fingerprint is HKDF-SHA256 of the secret under its own label: it identifies a key in
manifests and model folders but reveals nothing about the secret. The secret never appears in
a ``repr``, a log line, a manifest or an error message.

Derivation (stable: changing it changes every obfuscation, so it is versioned by ``v1``)::

    derive(label, n, context) = HKDF-SHA256(IKM=secret, salt=b"medcloak/hkdf/v1",
                                            info=b"medcloak/v1/derive\\x00" + label + b"\\x00" + context, L=n)
    stream(label, context)    = ChaCha20(key=HKDF(..., info=b"medcloak/v1/stream\\x00" + label + b"\\x00"
                                                 + context, L=32), nonce=16 zero bytes), key stream bytes
    fingerprint               = HKDF-SHA256(..., info=b"medcloak/v1/fingerprint", L=32).hex()
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medcloak.errors import MedcloakError

__all__ = ["Key", "KeyStream", "KEY_FORMAT", "KEY_VERSION", "SECRET_BYTES"]

KEY_FORMAT = "medcloak-key"
KEY_VERSION = 1
SECRET_BYTES = 32  # 256 bits
_SALT = b"medcloak/hkdf/v1"
_PARAMS = {
    "secret_bits": 8 * SECRET_BYTES,
    "kdf": "HKDF-SHA256",
    "kdf_salt": _SALT.decode(),
    "stream": "ChaCha20 (HKDF sub-key, zero nonce)",
    "fingerprint_kdf": "HKDF-SHA256 info=medcloak/v1/fingerprint",
}


def _label_bytes(label: str) -> bytes:
    if not isinstance(label, str) or not label or "\x00" in label:
        raise MedcloakError(f"a derivation label must be a non-empty string without NUL, got {label!r}")
    return label.encode("utf-8")


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    if not 1 <= length <= 255 * 32:
        raise MedcloakError(f"HKDF-SHA256 output length must be 1..8160 bytes, got {length}")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret)


class KeyStream:
    """An endless, deterministic ChaCha20 key stream; read it in pieces with :meth:`read`.

    Reading ``a`` then ``b`` bytes gives the same bytes as reading ``a + b`` at once, so rejection
    sampling can draw more whenever it needs to and stay deterministic.
    """

    __slots__ = ("_enc",)

    def __init__(self, subkey: bytes):
        self._enc = Cipher(algorithms.ChaCha20(subkey, b"\x00" * 16), mode=None).encryptor()

    def read(self, n: int) -> bytes:
        """The next ``n`` key-stream bytes."""
        return self._enc.update(b"\x00" * int(n))

    def uint64(self, n: int) -> np.ndarray:
        """The next ``n`` key-stream words as little-endian ``uint64``."""
        return np.frombuffer(self.read(8 * int(n)), dtype="<u8").astype(np.uint64)

    def uniform(self, n: int) -> np.ndarray:
        """``n`` float64 uniforms in the open interval (0, 1) (53-bit resolution)."""
        return ((self.uint64(n) >> np.uint64(11)).astype(np.float64) + 0.5) * (2.0**-53)

    def __repr__(self) -> str:
        return "KeyStream(<secret>)"


class Key:
    """A 256-bit medcloak secret key.

    Create one with :meth:`generate`, store it with :meth:`save` and read it back with
    :meth:`load`. The secret is only reachable through derivations.

    Parameters
    ----------
    secret : bytes
        Exactly 32 bytes. Use :meth:`generate` rather than choosing it yourself.
    created : str, optional
        ISO-8601 UTC creation time (kept in the key file).
    """

    __slots__ = ("_secret", "_created", "_fingerprint", "_pseudonym_keys")

    def __init__(self, secret: bytes, *, created: str | None = None):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_BYTES:
            raise MedcloakError(f"a key secret must be {SECRET_BYTES} bytes")
        self._secret = bytes(secret)
        self._created = created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._fingerprint = _hkdf(self._secret, b"medcloak/v1/fingerprint", 32).hex()
        self._pseudonym_keys: dict[str, bytes] = {}  # label -> HMAC sub-key (HKDF cost 15 us a call)

    # -- creation and files ---------------------------------------------------------------
    @classmethod
    def generate(cls) -> "Key":
        """A fresh key from the operating system's CSPRNG (:func:`secrets.token_bytes`)."""
        return cls(secrets.token_bytes(SECRET_BYTES))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the key file with mode 0600; never overwrite an existing file.

        The file is created with ``os.open(O_CREAT | O_EXCL, 0o600)`` so no other user can read it
        at any moment and an existing file (even a dangling link) is never replaced.
        """
        path = Path(path)
        doc = {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "created": self._created,
            "fingerprint": self._fingerprint,
            "params": dict(_PARAMS),
            "secret": self._secret.hex(),
        }
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            raise MedcloakError("already exists; a key file is never overwritten (choose another name)", path) from None
        except OSError as exc:
            raise MedcloakError(f"cannot create key file: {exc.strerror}", path) from None
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Key":
        """Read a key file written by :meth:`save`.

        Raises
        ------
        MedcloakError
            If the file is missing, readable or writable by group/others (fix: ``chmod 600 FILE``),
            malformed, of an unknown version, or its fingerprint does not match its secret.
        """
        path = Path(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MedcloakError("key file not found", path) from None
        except OSError as exc:
            raise MedcloakError(f"cannot read key file: {exc.strerror}", path) from None
        if not stat.S_ISREG(st.st_mode):
            raise MedcloakError("key file is not a regular file", path)
        if st.st_mode & 0o077:
            raise MedcloakError(
                f"key file is readable or writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"fix it with: chmod 600 {path}",
                path,
            )
        if st.st_size > 1 << 16:  # a key file is a few hundred bytes
            raise MedcloakError(f"not a medcloak key file (too large: {st.st_size} bytes)", path)
        try:
            doc = json.loads(path.read_bytes()[: 1 << 16].decode("utf-8"))
            fmt, version = doc.get("format"), doc.get("version")
            secret_hex, fingerprint = doc.get("secret"), doc.get("fingerprint")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            raise MedcloakError("not a medcloak key file (unreadable JSON)", path) from None
        if fmt != KEY_FORMAT:
            raise MedcloakError("not a medcloak key file (wrong 'format')", path)
        if version != KEY_VERSION:
            raise MedcloakError(f"unsupported key file version {version!r} (this medcloak reads {KEY_VERSION})", path)
        try:
            secret = bytes.fromhex(secret_hex)
        except (TypeError, ValueError):
            secret = b""
        if len(secret) != SECRET_BYTES:
            raise MedcloakError("key file is damaged (the secret is not 256 bits of hex)", path)
        key = cls(secret, created=str(doc.get("created") or ""))
        if key.fingerprint != fingerprint:
            raise MedcloakError("key file is damaged (its fingerprint does not match its secret)", path)
        return key

    # -- identity -----------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """64 hex characters identifying the key (HKDF-derived; reveals nothing of the secret)."""
        return self._fingerprint

    @property
    def short_fingerprint(self) -> str:
        """The first 16 hex characters of :attr:`fingerprint` in groups of four, for display."""
        fp = self._fingerprint[:16]
        return ":".join(fp[i : i + 4] for i in range(0, 16, 4))

    @property
    def created(self) -> str:
        """Creation time (ISO-8601 UTC)."""
        return self._created

    @property
    def params(self) -> dict:
        """The derivation parameters (no secret)."""
        return dict(_PARAMS)

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.short_fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self):  # picklable for worker processes (in-memory pipe only)
        return (Key, (self._secret,), None, None, None)

    # -- derivations -------------------------------------------------------------------------
    def derive(self, label: str, length: int, *, context: bytes = b"") -> bytes:
        """``length`` bytes of HKDF-SHA256 output for ``label`` (and an optional ``context``).

        Parameters
        ----------
        label : str
            What the bytes are for (e.g. ``"dicom-uid-salt"``); distinct labels give independent bytes.
        length : int
            1 to 8160 bytes.
        context : bytes
            Further domain separation (e.g. a hash of the frame); may be empty.
        """
        info = b"medcloak/v1/derive\x00" + _label_bytes(label) + b"\x00" + bytes(context)
        return _hkdf(self._secret, info, int(length))

    def stream(self, label: str, *, context: bytes = b"") -> KeyStream:
        """A ChaCha20 key stream keyed by an HKDF sub-key for ``label`` / ``context``."""
        info = b"medcloak/v1/stream\x00" + _label_bytes(label) + b"\x00" + bytes(context)
        return KeyStream(_hkdf(self._secret, info, 32))

    def uniform(self, label: str, shape, *, context: bytes = b"") -> np.ndarray:
        """float64 uniforms in (0, 1) of ``shape`` from :meth:`stream`."""
        shape = _shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        return self.stream(label, context=context).uniform(n).reshape(shape)

    def normal(self, label: str, shape, *, context: bytes = b"") -> np.ndarray:
        """float32 standard-normal samples of ``shape`` from the key stream (Box-Muller).

        Pairs of stream uniforms ``(u1, u2)`` in (0, 1) give ``sqrt(-2 ln u1) cos(2 pi u2)`` and
        ``sqrt(-2 ln u1) sin(2 pi u2)``; the result is deterministic for (key, label, context, shape).
        """
        shape = _shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        m = (n + 1) // 2
        u = self.stream(label, context=context).uniform(2 * m)
        r = np.sqrt(-2.0 * np.log(u[:m]))
        theta = 2.0 * np.pi * u[m:]
        z = np.empty(2 * m, dtype=np.float64)
        z[0::2] = r * np.cos(theta)
        z[1::2] = r * np.sin(theta)
        return z[:n].astype(np.float32).reshape(shape)

    def pseudonym(self, label: str, value: str | bytes, *, length: int = 16) -> str:
        """A keyed pseudonym of ``value``: HMAC-SHA256 under the sub-key ``derive(label, 32)``, hex.

        Without the key nobody can compute it, so a pseudonym cannot be confirmed by trying
        candidate names (as a plain SHA-256 of a name could); with the key it is stable, so the
        hospital can map it back through its own table. Distinct labels give unrelated
        pseudonyms (``"output-name"`` for file names, ``"patient"`` for patient ids).

        Parameters
        ----------
        label : str
            What the pseudonym names.
        value : str or bytes
            The identifying value (str is UTF-8 encoded with ``surrogateescape``, so any file
            name works).
        length : int
            Hex characters kept, 8..64 (16 = 64 bits: collisions need about 4e9 values).

        >>> k = Key(bytes(32))
        >>> k.pseudonym("patient", "DOE^JOHN") == k.pseudonym("patient", "DOE^JOHN")
        True
        >>> len(k.pseudonym("patient", "DOE^JOHN", length=12))
        12
        """
        import hashlib
        import hmac

        if not 8 <= int(length) <= 64:
            raise MedcloakError(f"pseudonym length must be 8..64 hex characters, got {length}")
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        sub = self._pseudonym_keys.get(label)
        if sub is None:  # a batch names each file several times: derive each label's sub-key once
            sub = self._pseudonym_keys[label] = self.derive(label, 32)
        return hmac.new(sub, data, hashlib.sha256).hexdigest()[: int(length)]

    def integers(self, label: str, n: int, high: int, *, context: bytes = b"") -> np.ndarray:
        """``n`` integers uniform on ``[0, high)`` by rejection sampling (no modulo bias).

        32-bit stream words ``w`` are accepted when ``w < floor(2**32 / high) * high`` and map to
        ``w % high``; rejected words are skipped and more are read from the stream.
        """
        high = int(high)
        if not 1 <= high <= 2**32:
            raise MedcloakError(f"integers: high must be in 1..2**32, got {high}")
        return _rejection_sample(self.stream(label, context=context), int(n), high)


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(s) for s in np.atleast_1d(np.asarray(shape, dtype=np.int64)))


def _rejection_sample(ks: KeyStream, n: int, high: int) -> np.ndarray:
    limit = (2**32 // high) * high
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = n - out.size
        words = np.frombuffer(ks.read(4 * (need + need // 8 + 8)), dtype="<u4").astype(np.int64)
        out = np.concatenate([out, words[words < limit] % high])
    return out[:n]
