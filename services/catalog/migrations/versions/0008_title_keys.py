"""title_keys: every folded name of a title in a btree, for exact and prefix matches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:50:00

A name's prefix was matched with ``search_names LIKE '%\\nkey%'`` through a
trigram index: the index returns every title holding the query's trigrams
anywhere (4,000 rows for ``wolf arc``, each re-checked on the heap) and,
being a bitmap scan, reads all of them before any LIMIT. ``title_keys`` holds
the same keys (``titles.name_keys``), one row each, in a btree with the C
collation: an exact name or a prefix is one range of that index, read only as
far as the search's limit. A trigger keeps it equal to ``name_keys`` on every
insert and update (COPY included), so no write path can forget it; the two
indexes it replaces are dropped.

``search_words.word`` takes the C collation so that its primary key also
answers prefixes (``word ^@ 'sta'``): the last word of a query is completed
to the catalog's words instead of a ``star:*`` prefix, which makes the
full-text index collect every lexeme it begins.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"

SYNC = """
CREATE FUNCTION catalog.sync_title_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.name_keys IS NOT DISTINCT FROM OLD.name_keys THEN
            RETURN NULL;
        END IF;
        DELETE FROM catalog.title_keys WHERE title_id = NEW.id;
    END IF;
    INSERT INTO catalog.title_keys (key, title_id)
        SELECT DISTINCT k, NEW.id FROM unnest(NEW.name_keys) AS k WHERE k <> '';
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "title_keys",
        sa.Column("key", sa.Text(collation="C"), nullable=False),
        sa.Column("title_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["title_id"],
            ["catalog.titles.id"],
            name=op.f("fk_title_keys_title_id_titles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "title_id", name=op.f("pk_title_keys")),
        schema="catalog",
    )
    op.create_index("ix_title_keys_title_id", "title_keys", ["title_id"], schema="catalog")
    op.execute(
        "INSERT INTO catalog.title_keys (key, title_id) "
        "SELECT DISTINCT k, t.id FROM catalog.titles t, unnest(t.name_keys) AS k WHERE k <> ''"
    )
    # Planned without statistics, "key = ANY(...) LIMIT 200" looks cheapest as a
    # sequential scan of every key (300 ms on 100k titles): count them now.
    op.execute("ANALYZE catalog.title_keys")
    op.execute(SYNC)
    op.execute(
        "CREATE TRIGGER sync_title_keys AFTER INSERT OR UPDATE OF name_keys ON catalog.titles "
        "FOR EACH ROW EXECUTE FUNCTION catalog.sync_title_keys()"
    )
    op.drop_index("ix_titles_search_names_trgm", table_name="titles", schema="catalog")
    op.drop_index("ix_titles_name_keys", table_name="titles", schema="catalog")
    op.alter_column("search_words", "word", type_=sa.Text(collation="C"), schema="catalog")


def downgrade() -> None:
    op.alter_column("search_words", "word", type_=sa.Text(), schema="catalog")
    op.create_index(
        "ix_titles_name_keys", "titles", ["name_keys"], postgresql_using="gin", schema="catalog"
    )
    op.create_index(
        "ix_titles_search_names_trgm",
        "titles",
        ["search_names"],
        postgresql_using="gin",
        postgresql_ops={"search_names": "gin_trgm_ops"},
        schema="catalog",
    )
    op.execute("DROP TRIGGER sync_title_keys ON catalog.titles")
    op.execute("DROP FUNCTION catalog.sync_title_keys()")
    op.drop_index("ix_title_keys_title_id", table_name="title_keys", schema="catalog")
    op.drop_table("title_keys", schema="catalog")
