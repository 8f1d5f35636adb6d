"""The verified-token cache in front of the JWT verifier."""

from __future__ import annotations

import pytest

from studio_common.auth import Principal, Role
from studio_common.errors import Unauthorized
from studio_playback.tokens import CachedVerifier


class FakeVerifier:
    def __init__(self, exp: float | None = 1_000.0) -> None:
        self.calls = 0
        self.exp = exp
        self.fail = False

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        if self.fail:
            raise Unauthorized("bad")
        claims = {"sub": token} if self.exp is None else {"sub": token, "exp": self.exp}
        return Principal(subject=token, role=Role.viewer, claims=claims)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cached(inner, clock, **kw):
    return CachedVerifier(
        inner, max_entries=kw.get("max_entries", 10), ttl_seconds=kw.get("ttl", 60), clock=clock
    )  # type: ignore[arg-type]


async def test_a_verified_token_is_remembered_for_the_ttl():
    inner, clock = FakeVerifier(), Clock()
    v = cached(inner, clock)
    assert (await v.verify("a")).subject == "a"
    await v.verify("a")
    assert inner.calls == 1
    clock.now = 61
    await v.verify("a")
    assert inner.calls == 2


async def test_never_past_the_tokens_expiry():
    inner, clock = FakeVerifier(exp=10.0), Clock()
    v = cached(inner, clock)
    await v.verify("a")
    clock.now = 9.9
    await v.verify("a")
    assert inner.calls == 1
    clock.now = 10.0
    inner.fail = True  # the real verifier now rejects it as expired
    with pytest.raises(Unauthorized):
        await v.verify("a")


async def test_failures_are_not_cached_and_the_size_is_bounded():
    inner, clock = FakeVerifier(), Clock()
    v = cached(inner, clock, max_entries=2)
    inner.fail = True
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await v.verify("x")
    assert inner.calls == 2
    inner.fail = False
    for token in ("a", "b", "c"):
        await v.verify(token)
    assert len(v._entries) == 2
    calls = inner.calls
    await v.verify("a")  # evicted first
    assert inner.calls == calls + 1
