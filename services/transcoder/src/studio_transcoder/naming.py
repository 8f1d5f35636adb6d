"""Object keys and the names people see (languages, renditions)."""

from __future__ import annotations

import re
import uuid

# ISO 639-2 (what MKV and MP4 carry) → BCP 47 primary tags (what HLS wants).
_ISO639_2_TO_1 = {
    "jpn": "ja",
    "eng": "en",
    "spa": "es",
    "fre": "fr",
    "fra": "fr",
    "ger": "de",
    "deu": "de",
    "ita": "it",
    "por": "pt",
    "rus": "ru",
    "kor": "ko",
    "chi": "zh",
    "zho": "zh",
    "ara": "ar",
    "hin": "hi",
    "ind": "id",
    "may": "ms",
    "msa": "ms",
    "tha": "th",
    "vie": "vi",
    "pol": "pl",
    "tur": "tr",
    "dut": "nl",
    "nld": "nl",
    "swe": "sv",
    "fin": "fi",
    "nor": "no",
    "dan": "da",
    "ukr": "uk",
    "heb": "he",
    "gre": "el",
    "ell": "el",
    "cze": "cs",
    "ces": "cs",
    "hun": "hu",
    "rum": "ro",
    "ron": "ro",
    "tgl": "tl",
    "fil": "fil",
}

_DISPLAY_NAMES = {
    "ja": "Japanese",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "ru": "Russian",
    "ko": "Korean",
    "zh": "Chinese",
    "ar": "Arabic",
    "hi": "Hindi",
    "id": "Indonesian",
    "ms": "Malay",
    "th": "Thai",
    "vi": "Vietnamese",
    "pl": "Polish",
    "tr": "Turkish",
    "nl": "Dutch",
    "sv": "Swedish",
    "fi": "Finnish",
    "no": "Norwegian",
    "da": "Danish",
    "uk": "Ukrainian",
    "he": "Hebrew",
    "el": "Greek",
    "cs": "Czech",
    "hu": "Hungarian",
    "ro": "Romanian",
    "tl": "Tagalog",
    "fil": "Filipino",
    "und": "Unknown language",
}

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
UNDETERMINED = "und"
_VERSION = re.compile(r"^[0-9a-f]{32}$")


def language_tag(raw: str | None) -> str:
    """A stream's language tag as BCP 47 (``jpn`` → ``ja``); ``und`` when absent or odd."""
    if not raw:
        return UNDETERMINED
    value = raw.strip().replace("_", "-")
    if not _LANGUAGE.match(value):
        return UNDETERMINED
    primary, _, rest = value.partition("-")
    primary = _ISO639_2_TO_1.get(primary.lower(), primary.lower())
    return f"{primary}-{rest}" if rest else primary


def is_language(value: str) -> bool:
    return bool(_LANGUAGE.match(value))


def language_name(tag: str, title: str | None = None) -> str:
    """What a player shows: the stream's own title when it has one, else the language."""
    if title and title.strip():
        return " ".join(title.split())[:80]
    primary, _, region = tag.partition("-")
    name = _DISPLAY_NAMES.get(primary, tag)
    return f"{name} ({region})" if region else name


def new_version() -> str:
    """A fresh version id for one transcode attempt's output."""
    return uuid.uuid4().hex


def output_prefix(episode_id: uuid.UUID, version: str) -> str:
    """``hls/{episodeId}/{version}/``: immutable ids only, never a slug or a name,
    so a renamed title or a reused slug can never address another episode's files."""
    if not _VERSION.match(version):
        raise ValueError(f"not a version id: {version!r}")
    return f"hls/{episode_id}/{version}/"


def unique_names(names: list[str]) -> list[str]:
    """Suffixes repeats (``audio-en``, ``audio-en-2``) so every rendition has its own folder."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out
