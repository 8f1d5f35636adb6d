"""Demo titles so a fresh stack shows something on ``GET /api/titles``."""

from __future__ import annotations

from studio_catalog.config import CatalogSettings
from studio_catalog.schemas import SeasonIn, TitleIn
from studio_catalog.service import CatalogService
from studio_common.db import Database

DEMO_TITLES: list[dict[str, object]] = [
    {
        "slug": "starlight-courier",
        "name": "Starlight Courier",
        "type": "series",
        "year": 2024,
        "synopsis": "A teenage pilot delivers letters between orbital colonies and learns why nobody writes back.",
        "genres": ["sci-fi", "drama", "slice-of-life"],
        "languages": ["ja", "en"],
        "rating_avg": 8.4,
        "seasons": [1, 2],
    },
    {
        "slug": "blade-of-the-tidal-moon",
        "name": "Blade of the Tidal Moon",
        "type": "series",
        "year": 2022,
        "synopsis": "A swordswoman hunts the spirit that stole the tides from her fishing village.",
        "genres": ["action", "fantasy"],
        "languages": ["ja"],
        "rating_avg": 7.9,
        "seasons": [1],
    },
    {
        "slug": "cafe-nekomata",
        "name": "Café Nekomata",
        "type": "series",
        "year": 2023,
        "synopsis": "Two-tailed cats run a café in Kyoto after closing time.",
        "genres": ["comedy", "slice-of-life"],
        "languages": ["ja", "en"],
        "rating_avg": 8.1,
        "seasons": [1],
    },
    {
        "slug": "the-last-summer-signal",
        "name": "The Last Summer Signal",
        "type": "movie",
        "year": 2025,
        "synopsis": "A radio club picks up a broadcast from a town that flooded thirty years ago.",
        "genres": ["mystery", "drama"],
        "languages": ["ja"],
        "rating_avg": 8.8,
        "seasons": [],
    },
    {
        "slug": "mecha-garden-ova",
        "name": "Mecha Garden",
        "type": "ova",
        "year": 2021,
        "synopsis": "Retired battle robots tend a rooftop vegetable garden.",
        "genres": ["mecha", "comedy"],
        "languages": ["ja", "en"],
        "rating_avg": 7.2,
        "seasons": [1],
    },
]


async def seed_demo_titles(settings: CatalogSettings) -> int:
    """Insert the demo titles that are missing; returns how many were created."""
    database = Database.connect(settings.database_url, pool_size=1)
    created = 0
    try:
        for raw in DEMO_TITLES:
            data = dict(raw)
            seasons = data.pop("seasons")
            async with database.transaction() as session:
                service = CatalogService(session)
                if await service.titles.exists_by_slug(str(data["slug"])):
                    continue
                title = await service.create_title(TitleIn.model_validate(data))
                for number in seasons:  # type: ignore[attr-defined]
                    await service.create_season(SeasonIn(title_id=title.id, number=number))
                created += 1
    finally:
        await database.dispose()
    return created
