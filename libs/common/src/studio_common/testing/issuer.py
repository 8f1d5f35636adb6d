"""A real RS256 issuer for tests: keys, a JWKS served over HTTP, and token minting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from studio_common.testing.infra import QuietHandler, http_server


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = "https://issuer.test", audience: str = "studio-test") -> None:
        self.issuer = issuer
        # Every token carries it, as the services require one (aud=None leaves it out).
        self.audience = audience
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = self.add_key()
        self.jwks_url = ""
        self.jwks_requests = 0

    def add_key(self) -> str:
        kid = uuid.uuid4().hex[:16]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def rotate(self) -> str:
        self.kid = self.add_key()
        return self.kid

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            out.append(jwk)
        return {"keys": out}

    def mint(
        self,
        sub: str | None = None,
        role: str | None = "viewer",
        *,
        email: str | None = None,
        ttl: int = 300,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "sub": sub or f"user_{uuid.uuid4().hex[:12]}",
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "aud": self.audience,
        }
        if role is not None:
            body["role"] = role
        if email is not None:
            body["email"] = email
        body.update(claims)
        if body.get("aud") is None:
            body.pop("aud")
        use_kid = kid or self.kid
        return jwt.encode(body, self.keys[use_kid], algorithm="RS256", headers={"kid": use_kid})

    @contextmanager
    def serve(self) -> Iterator[TestIssuer]:
        issuer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                issuer.jwks_requests += 1
                self.send_json(json.dumps(issuer.jwks()).encode())

        with http_server(Handler) as base:
            self.jwks_url = f"{base}/.well-known/jwks.json"
            yield self
