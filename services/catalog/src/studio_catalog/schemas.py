"""Wire models: camelCase JSON, bounded strings and lists."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from studio_catalog.names import display_name, normalize_name
from studio_common.schemas import RequestModel

TitleType = Literal["series", "movie", "ova", "ona", "special"]
TranscodeState = Literal["pending", "queued", "processing", "ready", "failed"]

Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
NameKind = Literal["romaji", "english", "native", "synonym"]
# NFKC before the bounds are checked: a full-width name is measured as it is stored.
AltName = Annotated[
    str,
    StringConstraints(max_length=1200),
    AfterValidator(normalize_name),
    StringConstraints(min_length=1, max_length=300),
]
Synopsis = Annotated[str, StringConstraints(max_length=10_000)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=60)
]
LanguageTag = Annotated[
    str,
    StringConstraints(min_length=2, max_length=20, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
]


def _url_str(value: HttpUrl | None) -> str | None:
    return str(value) if value is not None else None


Url = Annotated[HttpUrl, Field(max_length=2048)]


# Checked against media's verified uploads by studio_catalog.sources; here only bounded.
SourceKey = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class TitleNameIn(RequestModel):
    kind: NameKind
    # BCP 47: `ja`, `en`, `zh-Hans`, `ko`; stored lower-case.
    language: Annotated[LanguageTag, AfterValidator(str.lower)]
    name: AltName


def _check_names(names: list[TitleNameIn] | None) -> None:
    """One romaji, English or native name per language; synonyms as many as
    needed, each once."""
    seen: set[tuple[str, str, str]] = set()
    for n in names or ():
        key = (n.kind, n.language, n.name.casefold() if n.kind == "synonym" else "")
        if key in seen:
            what = "synonym" if n.kind == "synonym" else f"{n.kind} name"
            raise ValueError(f"more than one {what} for language '{n.language}'")
        seen.add(key)


Names = Annotated[list[TitleNameIn], Field(max_length=30)]


class TitleIn(RequestModel):
    slug: Slug
    name: Name
    type: TitleType
    year: int | None = Field(default=None, ge=1900, le=2100)
    synopsis: Synopsis | None = None
    poster_url: Url | None = None
    banner_url: Url | None = None
    genres: list[Tag] = Field(default_factory=list, max_length=20)
    languages: list[LanguageTag] = Field(default_factory=list, max_length=20)
    platforms: list[Tag] = Field(default_factory=list, max_length=20)
    rating_avg: float | None = Field(default=None, ge=0, le=10)
    # Every name but `name`; replaced as a whole when given.
    names: Names = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> TitleIn:
        _check_names(self.names)
        return self


class TitlePatch(RequestModel):
    slug: Slug | None = None
    name: Name | None = None
    type: TitleType | None = None
    year: int | None = Field(default=None, ge=1900, le=2100)
    synopsis: Synopsis | None = None
    poster_url: Url | None = None
    banner_url: Url | None = None
    genres: list[Tag] | None = Field(default=None, max_length=20)
    languages: list[LanguageTag] | None = Field(default=None, max_length=20)
    platforms: list[Tag] | None = Field(default=None, max_length=20)
    rating_avg: float | None = Field(default=None, ge=0, le=10)
    names: Names | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> TitlePatch:
        _check_names(self.names)
        return self


class TitleNameOut(Schema):
    kind: str
    language: str
    name: str


class TitleSummary(Schema):
    id: uuid.UUID
    slug: str
    name: str
    # The name for the viewer's language (`?lang=` or Accept-Language); `names` has the others.
    display_name: str = ""
    type: str
    year: int | None
    poster_url: str | None
    genres: list[str]
    languages: list[str]
    rating_avg: float | None
    names: list[TitleNameOut] = Field(default_factory=list)

    @field_validator("names", mode="before")
    @classmethod
    def _json_names(cls, value: Any) -> Any:
        # The list query runs on the driver, which hands JSONB over as text.
        return json.loads(value) if isinstance(value, str) else value

    def for_language(self, language: str | None) -> TitleSummary:
        # The fields as they are (``vars``): a model_dump per name was a third
        # of a list page's Python time.
        self.display_name = display_name(self.name, map(vars, self.names), language)
        return self


class MarkerOut(Schema):
    kind: Literal["opening", "ending"]
    start_sec: float
    end_sec: float
    source: Literal["detected", "editor"]


class EpisodeOut(Schema):
    """An episode as viewers see it: no storage keys, no internal logs."""

    id: uuid.UUID
    title_id: uuid.UUID
    season_id: uuid.UUID
    number: int
    name: str
    synopsis: str | None
    duration_sec: float | None
    thumbnails: list[str]
    subtitles: list[dict[str, str]]
    renditions: list[str]
    transcode_state: TranscodeState
    transcode_progress: float | None
    playable: bool = Field(validation_alias="transcode_playable")
    public: bool
    # Where the opening and ending are, for "Skip opening" and "watched".
    markers: list[MarkerOut] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class EpisodeDetailOut(EpisodeOut):
    """One episode on its own: also what follows it, for the player's "Next episode"."""

    # The next episode of the title (this season's next, else the next season's
    # first) when it is playable; null for the last one, or one not ready yet.
    next_episode_id: uuid.UUID | None = None


class EpisodeAdminOut(EpisodeOut):
    source_key: str | None
    hls_master_url: str | None
    hls_master_key: str | None
    transcode_log: str | None
    transcode_job_id: uuid.UUID | None


class SeasonOut(Schema):
    id: uuid.UUID
    title_id: uuid.UUID
    number: int
    name: str | None
    episodes: list[EpisodeOut] = Field(default_factory=list)


class TitleDetail(TitleSummary):
    synopsis: str | None
    banner_url: str | None
    platforms: list[str]
    created_at: datetime
    updated_at: datetime
    seasons: list[SeasonOut] = Field(default_factory=list)


class SeasonIn(RequestModel):
    title_id: uuid.UUID
    number: int = Field(ge=0, le=1000)
    name: Name | None = None


class EpisodeIn(RequestModel):
    season_id: uuid.UUID
    number: int = Field(ge=0, le=10000)
    name: Name
    synopsis: Synopsis | None = None
    source_key: SourceKey
    # Subtitle uploads (media ids) attached to the source that must be part of
    # the episode; waited for like the source. Others attached are taken too.
    subtitle_upload_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)
    # Public episodes may be streamed from plain CDN URLs (free episodes, trailers).
    public: bool = False


class MarkerIn(RequestModel):
    kind: Literal["opening", "ending"]
    start_sec: float = Field(ge=0, le=86_400)
    end_sec: float = Field(ge=0, le=86_400)


class MarkersIn(RequestModel):
    """All of an episode's markers, replacing what it had; an empty list clears them."""

    markers: list[MarkerIn] = Field(max_length=2)


class EpisodePatch(RequestModel):
    name: Name | None = None
    synopsis: Synopsis | None = None
    # Not nullable: left out, it stays as it is; null is a validation error.
    public: bool = False
