"""search document: words split where a query's words are

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 23:45:00

A query's words are what ``\\w+`` finds in it (``player-12345678`` →
``player``, ``12345678``), but the full-text document was the text search
parser's reading of the names, which keeps punctuation with some tokens: a
hyphen before digits makes a signed number (``-12345678``, ``F-91`` → ``f``,
``-91``), a dot a decimal or a version (``2.0``, ``v2.0``). Such a name was not
found by its own words, so a search for ``player-12345678`` found nothing for
about one slug in twenty-five. The document is now built from the same text
with every run of characters that are neither letters, digits nor spaces
turned into a space, which splits it where a query is split. The column is
generated, so it is dropped and added again (every title's document rebuilt)
with its index.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"

SEARCH = (
    "setweight(to_tsvector('simple', regexp_replace(coalesce(search_names, ''), "
    "'[^[:alnum:][:space:]]+', ' ', 'g')), 'A') || "
    "setweight(to_tsvector('simple', regexp_replace(coalesce(synopsis, ''), "
    "'[^[:alnum:][:space:]]+', ' ', 'g')), 'B')"
)
OLD_SEARCH = (
    "setweight(to_tsvector('simple', coalesce(search_names, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(synopsis, '')), 'B')"
)


def _search_column(expression: str) -> None:
    op.drop_index("ix_titles_search", table_name="titles", schema="catalog")
    op.drop_column("titles", "search", schema="catalog")
    op.add_column(
        "titles",
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(expression, persisted=True)),
        schema="catalog",
    )
    op.create_index(
        "ix_titles_search", "titles", ["search"], postgresql_using="gin", schema="catalog"
    )


def upgrade() -> None:
    _search_column(SEARCH)


def downgrade() -> None:
    _search_column(OLD_SEARCH)
