from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from studio_common.testing.infra import QuietHandler, free_port, http_server
from studio_common.testing.plugin import Auth
from studio_common.testing.served import migrated_settings, served_app_fixtures
from studio_common.testing.suite import own_event_namespace, own_service_settings  # noqa: F401
from studio_identity.config import IdentitySettings
from studio_identity.keys import DevKeyStore
from studio_identity.main import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"identity-tests-webhook-secret-32b").decode()
CLERK_SECRET_KEY = "sk_test_identity_0123456789abcdef"
AUDIENCE = "studio-api"
FRONTEND = "http://localhost:3000"
ROLE_CLAIM = "public_metadata.role"


# --- a fake Clerk Backend API on loopback --------------------------------------------------


@dataclass
class FakeClerk:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Per path: status codes to answer with, in order; 200 once none are left.
    script: dict[str, list[int]] = field(default_factory=dict)

    def fail_next(self, clerk_id: str, *statuses: int) -> None:
        self.script[f"/v1/users/{clerk_id}/metadata"] = list(statuses)

    def patches_for(self, clerk_id: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == f"/v1/users/{clerk_id}/metadata"]


@contextmanager
def fake_clerk_server() -> Iterator[FakeClerk]:
    fake = FakeClerk()
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with lock:
                queued = fake.script.get(self.path)
                status = queued.pop(0) if queued else 200
                fake.requests.append(
                    {
                        "method": "PATCH",
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(raw or b"null"),
                        "status": status,
                    }
                )
            body = json.dumps({"object": "user", "updated_at": int(time.time() * 1000)}).encode()
            self.send_json(body, status)

    with http_server(Handler) as base:
        fake.url = f"{base}/v1"
        yield fake


@pytest.fixture(scope="session")
def fake_clerk() -> Iterator[FakeClerk]:
    with fake_clerk_server() as fake:
        yield fake


# --- the app under test, in-process (tokens from the shared test issuer) ------------------


@pytest.fixture(scope="session")
def migrated(service_settings: dict[str, Any]) -> str:
    url: str = migrated_settings(SERVICE_DIR, service_settings)["database_url"]
    return url


@pytest.fixture(scope="session")
def identity_settings(
    service_settings: dict[str, Any],
    migrated: str,
    fake_clerk: FakeClerk,
    tmp_path_factory: pytest.TempPathFactory,
) -> IdentitySettings:
    return IdentitySettings(
        **service_settings,
        dev_key_path=tmp_path_factory.mktemp("identity-app") / "keys" / "jwt-key.pem",
        clerk_webhook_secret=WEBHOOK_SECRET,
        clerk_secret_key=CLERK_SECRET_KEY,
        clerk_api_url=fake_clerk.url,
        consumer_max_deliver=3,
    )


identity_app, client = served_app_fixtures("identity_app", create_app, settings="identity_settings")


@pytest.fixture(scope="session")
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(migrated)
    yield eng
    await eng.dispose()


@pytest.fixture(autouse=True)
async def clean_users(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE identity.users"))


def new_subject() -> str:
    return f"user_{uuid.uuid4().hex[:20]}"


async def create_user(
    client: httpx.AsyncClient, auth: Auth, role: str = "viewer", email: str | None = None
) -> dict[str, Any]:
    """A user as it appears after its first `GET /api/me`."""
    sub = new_subject()
    r = await client.get("/api/me", headers=auth.headers(role, sub=sub, email=email))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


# --- Svix-signed webhooks -----------------------------------------------------------------


def svix_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """What Svix sends: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_webhook(
    event: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if timestamp is None else timestamp
    return body, {
        "svix-id": msg_id,
        "svix-timestamp": str(ts),
        "svix-signature": svix_signature(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def clerk_user(
    clerk_id: str,
    *,
    email: str | None = "someone@example.com",
    role: str | None = None,
    updated_at_ms: int | None = None,
) -> dict[str, Any]:
    emails = [{"id": "idn_1", "email_address": email}] if email else []
    return {
        "id": clerk_id,
        "object": "user",
        "email_addresses": emails,
        "primary_email_address_id": "idn_1" if email else None,
        "public_metadata": {"role": role} if role else {},
        "created_at": int(time.time() * 1000) - 1000,
        "updated_at": updated_at_ms or int(time.time() * 1000),
    }


def clerk_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "event",
        "type": event_type,
        "data": data,
        "timestamp": int(time.time() * 1000),
    }


# --- identity as the issuer, under a real server --------------------------------------------


@dataclass
class DevServer:
    url: str
    settings: IdentitySettings
    keys: DevKeyStore

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    async def token(self, role: str = "viewer", **body: Any) -> str:
        payload = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "role": role, **body}
        async with httpx.AsyncClient(base_url=self.url) as c:
            r = await c.post("/api/dev/token", json=payload)
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token


@pytest.fixture(scope="session")
def dev_server(
    service_settings: dict[str, Any], migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """identity in development mode on a loopback port, verifying its own tokens
    through its own JWKS endpoint, with audience and azp checks switched on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = IdentitySettings(
        **{
            **service_settings,
            "environment": "development",
            "jwt_issuer": url,
            "jwks_url": f"{url}/.well-known/jwks.json",
            "jwt_audience": AUDIENCE,
            "jwt_authorized_parties": [FRONTEND],
            "jwt_role_claim": ROLE_CLAIM,
            # The in-process app owns the role write-back consumer.
            "run_consumers": False,
        },
        dev_key_path=tmp_path_factory.mktemp("identity-dev") / "keys" / "jwt-key.pem",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the identity dev server did not start")
        time.sleep(0.05)
    try:
        yield DevServer(url=url, settings=settings, keys=DevKeyStore(settings.dev_key_path))
    finally:
        server.should_exit = True
        thread.join(30)
