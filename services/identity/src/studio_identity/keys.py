"""The development issuer's keys: an RS256 key pair kept in a file outside the repo.

``jwt-key.pem`` holds the current private key (mode 0600, created on first
use). ``rotate`` replaces it and keeps the old public key in
``jwt-key.retired.json`` until its grace period ends, so tokens signed just before a
rotation stay verifiable while verifiers pick up the new key (an unknown
``kid`` makes them refetch the JWKS). The server and the CLI share the files:
readers notice a change on disk and reload, writers take a lock file and
replace files atomically.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger("studio.identity.keys")

KEY_SIZE = 2048
ALGORITHM = "RS256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The public key as a JWK whose ``kid`` is its RFC 7638 thumbprint."""
    numbers = key.public_numbers()
    e = _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
    n = _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    kid = _b64url(hashlib.sha256(canonical.encode()).digest())
    return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": kid, "n": n, "e": e}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key.public_key())

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"}
        )


@dataclass(frozen=True, slots=True)
class RetiredKey:
    jwk: dict[str, Any]
    expires_at: float


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        _write_private(tmp, data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class DevKeyStore:
    def __init__(
        self,
        path: Path,
        *,
        grace_seconds: float = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path.expanduser().absolute()
        self.retired_path = self.path.with_name(f"{self.path.stem}.retired.json")
        self.lock_path = self.path.with_name(f"{self.path.stem}.lock")
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._current: SigningKey | None = None
        self._retired: list[RetiredKey] = []
        self._seen: tuple[Any, ...] | None = None
        self._mutex = threading.Lock()

    # --- files ------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _signature(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for p in (self.path, self.retired_path):
            try:
                st = p.stat()
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _read(self) -> None:
        signature = self._signature()
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "tightening the dev key file's mode to 0600", extra={"path": str(self.path)}
            )
            self.path.chmod(0o600)
        key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.path} does not hold an RSA private key")
        retired: list[RetiredKey] = []
        if self.retired_path.exists():
            for item in json.loads(self.retired_path.read_text()):
                retired.append(RetiredKey(jwk=item["jwk"], expires_at=float(item["expiresAt"])))
        self._current = SigningKey(public_jwk(key.public_key())["kid"], key)
        self._retired = retired
        self._seen = signature

    def _refresh(self) -> None:
        with self._mutex:
            if self._current is not None and self._signature() == self._seen:
                return
            if not self.path.exists():
                with self._locked():
                    if not self.path.exists():
                        self._create()
            self._read()

    def _create(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        _atomic_write(self.path, _pem(key))
        log.info("generated a development signing key", extra={"path": str(self.path)})

    # --- use ------------------------------------------------------------------------

    def load_or_create(self) -> SigningKey:
        """The current signing key; generated (with its directories) on first use."""
        self._refresh()
        assert self._current is not None
        return self._current

    def sign(self, claims: dict[str, Any]) -> str:
        return self.load_or_create().sign(claims)

    def jwks(self) -> dict[str, Any]:
        """The current public key and the retired ones still within their grace period."""
        current = self.load_or_create()
        now = self._clock()
        keys = [current.jwk]
        for retired in self._retired:
            if now < retired.expires_at and retired.jwk["kid"] != current.kid:
                keys.append(retired.jwk)
        return {"keys": keys}

    def rotate(self, *, grace_seconds: float | None = None) -> SigningKey:
        """Replace the signing key; the old public key is served for the grace period."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        with self._locked():
            if not self.path.exists():
                self._create()
            with self._mutex:
                self._read()
            previous = self._current
            assert previous is not None
            now = self._clock()
            kept = [
                {"jwk": r.jwk, "expiresAt": r.expires_at}
                for r in self._retired
                if now < r.expires_at and r.jwk["kid"] != previous.kid
            ]
            kept.append({"jwk": previous.jwk, "expiresAt": now + grace})
            _atomic_write(self.retired_path, json.dumps(kept, indent=2).encode())
            new_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
            _atomic_write(self.path, _pem(new_key))
            with self._mutex:
                self._read()
        assert self._current is not None
        log.info(
            "rotated the development signing key",
            extra={"kid": self._current.kid, "retired_kid": previous.kid},
        )
        return self._current


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
