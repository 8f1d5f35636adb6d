"""All SQL of identity lives here; nothing in this module commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_identity.models import User


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class UserFilter:
    role: str | None = None
    email: str | None = None


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_clerk_id(self, clerk_id: str, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.clerk_id == clerk_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt.execution_options(populate_existing=True))).first()

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt.execution_options(populate_existing=True))).first()

    async def insert_if_absent(self, clerk_id: str, **values: Any) -> User | None:
        """Insert a user unless one with this subject exists; None if it did.

        ``ON CONFLICT DO NOTHING`` makes two first requests of one user race
        safely: the loser waits for the winner's commit and inserts nothing.
        """
        row = (
            await self.session.execute(
                insert(User)
                .values(clerk_id=clerk_id, **values)
                .on_conflict_do_nothing(index_elements=[User.clerk_id])
                .returning(User.id)
            )
        ).first()
        if row is None:
            return None
        return await self.get(row[0])

    async def lock_active_admins(self) -> list[uuid.UUID]:
        """Lock every active admin row (in id order, so lockers queue instead of deadlocking)."""
        rows = await self.session.scalars(
            select(User.id)
            .where(User.role == "admin", User.deleted_at.is_(None))
            .order_by(User.id)
            .with_for_update()
        )
        return list(rows.all())

    async def list_page(self, f: UserFilter, *, offset: int, limit: int) -> tuple[list[User], int]:
        conds: list[ColumnElement[bool]] = [User.deleted_at.is_(None)]
        if f.role:
            conds.append(User.role == f.role)
        if f.email:
            conds.append(User.email.ilike(f"%{like_escape(f.email)}%", escape="\\"))
        where = and_(literal(True), *conds)
        total = int(
            await self.session.scalar(select(func.count()).select_from(User).where(where)) or 0
        )
        rows = await self.session.scalars(
            select(User).where(where).order_by(User.created_at, User.id).offset(offset).limit(limit)
        )
        return list(rows.all()), total

    async def save(self, user: User) -> User:
        await self.session.flush()
        await self.session.refresh(user)
        return user
