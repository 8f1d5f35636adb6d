"""Identity's current roles, projected into every service (ADR 7).

Identity keeps the current role of every user whose role it changed (or who
was deleted) in a JetStream key-value bucket, one key per token subject. Each
service watches the bucket: the watch delivers the latest value of every key
first, so a service started after a demotion sees it before it serves, and
then every change as it is written. :func:`studio_common.auth.current_user`
applies the projection to each verified token: the effective role is the lower
of the token's and identity's, so a demotion takes effect everywhere within
the watch's latency while a token never gains a role it does not carry. A user
identity never changed is not in the bucket, and the token's role stands.

Only identity writes, and only what its database committed (from its outbox
events, or a reconciliation of its table); each value carries the user's
``version``, which grows with every change, and a write never replaces a
newer version (compare-and-set on the key's revision).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from studio_common.auth import Principal, Role
from studio_common.tasks import stop_task

log = logging.getLogger("studio.roles")

# How long a starting service waits for the bucket's current contents.
INITIAL_LOAD_SECONDS = 15.0
CAS_ATTEMPTS = 10


def role_bucket(stream: str) -> str:
    """The bucket beside the event stream (tests get a private one with theirs)."""
    return f"{stream}_ROLES"


def role_key(subject: str) -> str:
    """A key for any subject: base64url keeps to the characters NATS keys allow."""
    return base64.urlsafe_b64encode(subject.encode()).decode().rstrip("=")


def subject_of(key: str) -> str:
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A user's current role as identity's database has it."""

    role: Role
    version: int
    user_id: uuid.UUID | None = None
    deleted: bool = False

    def encode(self) -> bytes:
        return json.dumps(
            {
                "role": self.role.name,
                "version": self.version,
                "userId": str(self.user_id) if self.user_id else None,
                "deleted": self.deleted,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RoleRecord:
        data = json.loads(raw)
        role = data.get("role") if isinstance(data, dict) else None
        version = data.get("version")
        if (
            not isinstance(role, str)
            or role not in Role.__members__
            or not isinstance(version, int)
        ):
            raise ValueError(f"not a role record: {raw[:100]!r}")
        user_id = data.get("userId")
        return cls(
            role=Role[role],
            version=version,
            user_id=uuid.UUID(user_id) if isinstance(user_id, str) else None,
            deleted=data.get("deleted") is True,
        )

    @property
    def ceiling(self) -> Role:
        # A deleted user keeps no privileges, whatever a token still says.
        return Role.viewer if self.deleted else self.role


async def open_bucket(js: JetStreamContext, bucket: str) -> KeyValue:
    """The bucket, created on first use by whichever service starts first."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))
    except BadRequestError:
        # Created by another process in the meantime.
        return await js.key_value(bucket)


async def write_role(kv: KeyValue, subject: str, record: RoleRecord) -> bool:
    """Store ``record`` unless the bucket holds the same or a newer version.

    Compare-and-set on the key's revision: two writers (identity replicas, or
    the reconciliation beside a consumer) never let an older version win.
    True if written."""
    key = role_key(subject)
    for _ in range(CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            entry = None
        try:
            if entry is None or entry.value is None:
                # create() also succeeds over a deleted key.
                await kv.create(key, record.encode())
                return True
            with contextlib.suppress(ValueError):
                if RoleRecord.decode(entry.value).version >= record.version:
                    return False
            await kv.update(key, record.encode(), last=entry.revision)
            return True
        except (KeyWrongLastSequenceError, BadRequestError):
            continue  # someone wrote in between: read again
    raise RuntimeError(f"the role of {subject!r} kept changing while being written")


class RoleProjection:
    """Subject → identity's current role, kept by a watch of the bucket."""

    def __init__(self) -> None:
        self._records: dict[str, RoleRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self.loaded = asyncio.Event()
        self.updates = 0

    def get(self, subject: str) -> RoleRecord | None:
        return self._records.get(subject)

    def effective(self, principal: Principal) -> Principal:
        record = self._records.get(principal.subject)
        if record is None or record.ceiling >= principal.role:
            return principal
        return dataclasses.replace(principal, role=record.ceiling)

    def apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        try:
            subject = subject_of(key)
        except ValueError:
            log.warning("ignoring a role key that is not a subject", extra={"key": key[:100]})
            return
        if operation in (KV_DEL, KV_PURGE) or value is None:
            self._records.pop(subject, None)
            return
        try:
            record = RoleRecord.decode(value)
        except ValueError:
            # Unreadable: the safe reading is the least privilege.
            log.error("unreadable role record; treating the user as a viewer", exc_info=True)
            record = RoleRecord(role=Role.viewer, version=0)
        self._records[subject] = record
        self.updates += 1

    async def start(self, kv: KeyValue, *, initial_timeout: float = INITIAL_LOAD_SECONDS) -> None:
        """Watch the bucket; return once its current contents are loaded."""
        self._watcher = await kv.watchall()
        self._task = asyncio.create_task(self._follow(self._watcher), name="role-projection")
        waiting = asyncio.create_task(self.loaded.wait())
        done, _ = await asyncio.wait(
            {waiting, self._task}, timeout=initial_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting not in done:
            waiting.cancel()
            await self.stop()
            if self._task in done and self._task.exception() is not None:
                raise RuntimeError("the role watch failed") from self._task.exception()
            raise TimeoutError(f"the role bucket did not load within {initial_timeout} s")
        log.info("role projection loaded", extra={"users": len(self._records)})

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the end of the initial contents
                self.loaded.set()
                continue
            self.apply(entry.key, entry.value, entry.operation)

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None
        if self._task is not None:
            await stop_task(self._task)
            self._task = None


async def start_role_projection(
    js: JetStreamContext, stream: str, stack: AsyncExitStack
) -> tuple[RoleProjection, KeyValue]:
    """Open the bucket and load the projection; it stops with ``stack``."""
    kv = await open_bucket(js, role_bucket(stream))
    projection = RoleProjection()
    await projection.start(kv)
    stack.push_async_callback(projection.stop)
    return projection, kv
