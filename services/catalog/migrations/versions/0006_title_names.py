"""title names: romaji, English, native and synonyms, and one search document over them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 18:20:00

A title keeps its names as a JSON list (kind, language, name) read with the
title in one row, and a search document built from them at write time:
``search_names`` (every folded name and its romaji reading, one a line, for
exact, prefix and substring matches through trigrams) and ``name_keys`` (the
exact names, for a one-lookup exact match) and ``cjk_grams`` (the two-character
runs of CJK names: a two-kanji query narrows where trigrams cannot), and
``search_words``, the words of every name, which misspelt query words are
corrected against. The full-text document now covers
every name instead of the primary one. Existing titles get their own name as
their document; nothing is deployed yet.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from studio_common.migrations import array_column, json_list_column

revision: str = "0006"
down_revision: str | None = "0005"

SEARCH = (
    "setweight(to_tsvector('simple', coalesce(search_names, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(synopsis, '')), 'B')"
)
OLD_SEARCH = (
    "setweight(to_tsvector('simple', coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(synopsis, '')), 'B')"
)


def upgrade() -> None:
    op.add_column(
        "titles",
        json_list_column("names"),
        schema="catalog",
    )
    op.add_column(
        "titles",
        sa.Column("search_names", sa.Text(), server_default="", nullable=False),
        schema="catalog",
    )
    op.add_column(
        "titles",
        array_column("name_keys", sa.Text()),
        schema="catalog",
    )
    op.add_column(
        "titles",
        array_column("cjk_grams", sa.Text()),
        schema="catalog",
    )
    op.execute(
        "UPDATE catalog.titles SET search_names = E'\\n' || lower(name) || E'\\n', "
        "name_keys = ARRAY[lower(name)]"
    )
    op.drop_index("ix_titles_name_trgm", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_search", table_name="titles", schema="catalog")
    op.drop_column("titles", "search", schema="catalog")
    op.add_column(
        "titles",
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(SEARCH, persisted=True)),
        schema="catalog",
    )
    op.create_index(
        "ix_titles_search", "titles", ["search"], postgresql_using="gin", schema="catalog"
    )
    op.create_index(
        "ix_titles_search_names_trgm",
        "titles",
        ["search_names"],
        postgresql_using="gin",
        postgresql_ops={"search_names": "gin_trgm_ops"},
        schema="catalog",
    )
    op.create_index(
        "ix_titles_name_keys", "titles", ["name_keys"], postgresql_using="gin", schema="catalog"
    )
    op.create_index(
        "ix_titles_cjk_grams", "titles", ["cjk_grams"], postgresql_using="gin", schema="catalog"
    )
    op.create_table(
        "search_words",
        sa.Column("word", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("word", name=op.f("pk_search_words")),
        schema="catalog",
    )
    op.create_index(
        "ix_search_words_trgm",
        "search_words",
        ["word"],
        postgresql_using="gin",
        postgresql_ops={"word": "gin_trgm_ops"},
        schema="catalog",
    )
    op.execute(
        "INSERT INTO catalog.search_words (word) SELECT DISTINCT w "
        "FROM catalog.titles t, regexp_split_to_table(lower(t.name), '[^[:alpha:]]+') w "
        "WHERE length(w) BETWEEN 3 AND 20"
    )


def downgrade() -> None:
    op.drop_index("ix_search_words_trgm", table_name="search_words", schema="catalog")
    op.drop_table("search_words", schema="catalog")
    op.drop_index("ix_titles_cjk_grams", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_name_keys", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_search_names_trgm", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_search", table_name="titles", schema="catalog")
    op.drop_column("titles", "search", schema="catalog")
    op.add_column(
        "titles",
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(OLD_SEARCH, persisted=True)),
        schema="catalog",
    )
    op.create_index(
        "ix_titles_search", "titles", ["search"], postgresql_using="gin", schema="catalog"
    )
    op.create_index(
        "ix_titles_name_trgm",
        "titles",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
        schema="catalog",
    )
    op.drop_column("titles", "cjk_grams", schema="catalog")
    op.drop_column("titles", "name_keys", schema="catalog")
    op.drop_column("titles", "search_names", schema="catalog")
    op.drop_column("titles", "names", schema="catalog")
