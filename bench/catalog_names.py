"""The generated catalog of bench/catalog.py: titles with 3 to 6 names in several
scripts, real anime titles among them, and the relevance set over it.

Generated titles follow real naming patterns: a romaji title of two words and a
particle, sometimes an arc after a colon (``Hoshi no Yume: Kaze-hen``), long
vowels written with macrons (``Shōnen``, ``Tōkyō``); the English title says the
same in English (``Dream of the Star: Wind Arc``); the native title is kanji
and kana (``星の夢 風編``); synonyms are abbreviations (``DotS``) and spellings
without macrons. Forty real titles, whose words overlap the generated ones
(kyojin, shōnen, ōkami, ...), carry the relevance set.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

from studio_catalog.names import search_document

# romaji, native, English
VOCABULARY = [
    ("hoshi", "星", "star"), ("tsuki", "月", "moon"), ("sora", "空", "sky"),
    ("yume", "夢", "dream"), ("kaze", "風", "wind"), ("hikari", "光", "light"),
    ("kokoro", "心", "heart"), ("sekai", "世界", "world"), ("monogatari", "物語", "story"),
    ("densetsu", "伝説", "legend"), ("shōnen", "少年", "boy"), ("shōjo", "少女", "girl"),
    ("yūsha", "勇者", "hero"), ("mahō", "魔法", "magic"), ("tenshi", "天使", "angel"),
    ("akuma", "悪魔", "devil"), ("kyojin", "巨人", "giant"), ("tsurugi", "剣", "sword"),
    ("hana", "花", "flower"), ("umi", "海", "sea"), ("yoru", "夜", "night"),
    ("natsu", "夏", "summer"), ("fuyu", "冬", "winter"), ("kōkō", "高校", "high school"),
    ("tōkyō", "東京", "tokyo"), ("ōkami", "狼", "wolf"), ("ryū", "竜", "dragon"),
    ("kage", "影", "shadow"), ("honō", "炎", "flame"), ("kōri", "氷", "ice"),
    ("yuki", "雪", "snow"), ("ame", "雨", "rain"), ("mori", "森", "forest"),
    ("shiro", "城", "castle"), ("hime", "姫", "princess"), ("senshi", "戦士", "warrior"),
    ("kishi", "騎士", "knight"), ("majo", "魔女", "witch"), ("tabi", "旅", "journey"),
    ("uta", "歌", "song"), ("kioku", "記憶", "memory"), ("mirai", "未来", "future"),
    ("sensō", "戦争", "war"), ("kami", "神", "god"), ("neko", "猫", "cat"),
    ("gakuen", "学園", "academy"), ("bōken", "冒険", "adventure"), ("himitsu", "秘密", "secret"),
    ("shingeki", "進撃", "advance"), ("kaizoku", "海賊", "pirate"),
]  # fmt: skip
GENRES = [
    "action", "adventure", "comedy", "drama", "fantasy", "horror",
    "mecha", "mystery", "romance", "sci-fi", "slice-of-life", "sports",
]  # fmt: skip
TYPES = ["series", "movie", "ova", "ona", "special"]

# slug: romaji, English, native, synonyms
REAL = {
    "attack-on-titan": ("Shingeki no Kyojin", "Attack on Titan", "進撃の巨人", ["AoT", "SnK"]),
    "your-name": ("Kimi no Na wa.", "Your Name.", "君の名は。", []),
    "spirited-away": ("Sen to Chihiro no Kamikakushi", "Spirited Away", "千と千尋の神隠し", []),
    "my-hero-academia": ("Boku no Hero Academia", "My Hero Academia", "僕のヒーローアカデミア",
                         ["MHA", "BNHA"]),
    "demon-slayer": ("Kimetsu no Yaiba", "Demon Slayer", "鬼滅の刃", []),
    "jujutsu-kaisen": ("Jujutsu Kaisen", "Jujutsu Kaisen", "呪術廻戦", ["JJK"]),
    "tokyo-ghoul": ("Tōkyō Gūru", "Tokyo Ghoul", "東京喰種", []),
    "fullmetal-alchemist": ("Hagane no Renkinjutsushi", "Fullmetal Alchemist", "鋼の錬金術師",
                            ["FMA"]),
    "madoka-magica": ("Mahō Shōjo Madoka Magica", "Puella Magi Madoka Magica",
                      "魔法少女まどか☆マギカ", ["Madoka"]),
    "naruto": ("Naruto", None, "ナルト", []),
    "promised-neverland": ("Yakusoku no Neverland", "The Promised Neverland",
                           "約束のネバーランド", ["TPN"]),
    "your-lie-in-april": ("Shigatsu wa Kimi no Uso", "Your Lie in April", "四月は君の嘘",
                          ["KimiUso"]),
    "kaguya-sama": ("Kaguya-sama wa Kokurasetai", "Kaguya-sama: Love Is War",
                    "かぐや様は告らせたい", []),
    "gurren-lagann": ("Tengen Toppa Gurren Lagann", "Gurren Lagann", "天元突破グレンラガン",
                      ["TTGL"]),
    "a-silent-voice": ("Koe no Katachi", "A Silent Voice", "聲の形", []),
    "land-of-the-lustrous": ("Hōseki no Kuni", "Land of the Lustrous", "宝石の国", []),
    "assassination-classroom": ("Ansatsu Kyōshitsu", "Assassination Classroom", "暗殺教室", []),
    "haikyuu": ("Haikyū!!", "Haikyu!!", "ハイキュー!!", []),
    "evangelion": ("Shin Seiki Evangelion", "Neon Genesis Evangelion", "新世紀エヴァンゲリオン",
                   ["Eva", "NGE"]),
    "cowboy-bebop": ("Kaubōi Bibappu", "Cowboy Bebop", "カウボーイビバップ", []),
    "steins-gate": ("Steins;Gate", "Steins;Gate", "シュタインズ・ゲート", []),
    "code-geass": ("Code Geass: Hangyaku no Lelouch", "Code Geass: Lelouch of the Rebellion",
                   "コードギアス 反逆のルルーシュ", []),
    "princess-mononoke": ("Mononoke Hime", "Princess Mononoke", "もののけ姫", []),
    "totoro": ("Tonari no Totoro", "My Neighbor Totoro", "となりのトトロ", []),
    "wolf-children": ("Ōkami Kodomo no Ame to Yuki", "Wolf Children", "おおかみこどもの雨と雪",
                      []),
    "one-piece": ("One Piece", "One Piece", "ワンピース", ["OP"]),
    "sword-art-online": ("Sword Art Online", "Sword Art Online", "ソードアート・オンライン",
                         ["SAO"]),
    "mob-psycho": ("Mob Psycho 100", "Mob Psycho 100", "モブサイコ100", []),
    "frieren": ("Sōsō no Frieren", "Frieren: Beyond Journey's End", "葬送のフリーレン", []),
    "spy-family": ("Spy x Family", "Spy x Family", "スパイファミリー", []),
    "aot-final": ("Shingeki no Kyojin: The Final Season",
                  "Attack on Titan: The Final Season", "進撃の巨人 The Final Season", []),
    "violet-evergarden": ("Violet Evergarden", "Violet Evergarden",
                          "ヴァイオレット・エヴァーガーデン", []),
    "toradora": ("Toradora!", "Toradora!", "とらドラ!", []),
    "clannad": ("Clannad", "Clannad", "クラナド", []),
    "bocchi": ("Bocchi the Rock!", "Bocchi the Rock!", "ぼっち・ざ・ろっく!", []),
    "dungeon-meshi": ("Dungeon Meshi", "Delicious in Dungeon", "ダンジョン飯", []),
}  # fmt: skip

# query → the slug expected first (top 5 at worst): romaji with long vowels as
# ō, ou or o; English titles and their words after a colon; abbreviations;
# kanji; hiragana and katakana; typos.
RELEVANCE = [
    ("shingeki no kyojin", "attack-on-titan"),
    ("attack on titan", "attack-on-titan"),
    ("aot", "attack-on-titan"),
    ("進撃の巨人", "attack-on-titan"),
    ("shingeky no kyojin", "attack-on-titan"),
    ("しんげきのきょじん", "attack-on-titan"),
    ("final season", "aot-final"),
    ("your name", "your-name"),
    ("君の名は", "your-name"),
    ("spirited away", "spirited-away"),
    ("千と千尋", "spirited-away"),
    ("mha", "my-hero-academia"),
    ("hero academia", "my-hero-academia"),
    ("鬼滅", "demon-slayer"),
    ("demon slayer", "demon-slayer"),
    ("jujutsu kaisen", "jujutsu-kaisen"),
    ("呪術廻戦", "jujutsu-kaisen"),
    ("toukyou guuru", "tokyo-ghoul"),
    ("tokyo ghoul", "tokyo-ghoul"),
    ("fma", "fullmetal-alchemist"),
    ("fullmetal alchemist", "fullmetal-alchemist"),
    ("hagane no renkinjutsushi", "fullmetal-alchemist"),
    ("mahou shoujo madoka", "madoka-magica"),
    ("まどか", "madoka-magica"),
    ("naruto", "naruto"),
    ("ナルト", "naruto"),
    ("なると", "naruto"),
    ("promised neverland", "promised-neverland"),
    ("your lie in april", "your-lie-in-april"),
    ("kaguya sama", "kaguya-sama"),
    ("gurren lagann", "gurren-lagann"),
    ("koe no katachi", "a-silent-voice"),
    ("a silent voice", "a-silent-voice"),
    ("houseki no kuni", "land-of-the-lustrous"),
    ("hoseki no kuni", "land-of-the-lustrous"),
    ("ansatsu kyoushitsu", "assassination-classroom"),
    ("haikyuu", "haikyuu"),
    ("ハイキュー", "haikyuu"),
    ("evangelion", "evangelion"),
    ("neon genesis", "evangelion"),
    ("cowboy bebop", "cowboy-bebop"),
    ("steins gate", "steins-gate"),
    ("lelouch", "code-geass"),
    ("もののけ姫", "princess-mononoke"),
    ("princess mononoke", "princess-mononoke"),
    ("となりのトトロ", "totoro"),
    ("totoro", "totoro"),
    ("wolf children", "wolf-children"),
    ("sao", "sword-art-online"),
    ("frieren", "frieren"),
    ("sousou no frieren", "frieren"),
    ("葬送のフリーレン", "frieren"),
    ("violet evergarden", "violet-evergarden"),
    ("violet evergarde", "violet-evergarden"),
    ("bocchi the rock", "bocchi"),
    ("delicious in dungeon", "dungeon-meshi"),
]

# The query classes of issue 19, each cycled over a few queries.
QUERY_CLASSES = {
    "broad_romaji": ["hoshi", "tsuki", "yume", "kaze", "sora"],
    "two_words": ["hoshi no yume", "tsuki kaze", "sora uta", "kage honō"],
    "typo": ["hosih no yume", "tsukj", "densetu", "monogatri"],
    "english": ["dream of the star", "silent voice", "wolf arc", "legend of the moon"],
    "kanji": ["星の", "夢", "巨人", "魔法少女"],
    "kana": ["ほし", "つきの", "ゆめ", "しょうねん"],
}

_ASCII_MACRONS = str.maketrans({"ō": "o", "ū": "u", "Ō": "O", "Ū": "U"})


_SMALL = frozenset({"no", "to", "wa", "of", "the", "and"})


def _cap(words: str) -> str:
    """Title case, particles and articles (but the first word) left small."""
    return " ".join(
        w if i and w in _SMALL else w[:1].upper() + w[1:] for i, w in enumerate(words.split(" "))
    )


def _names(
    romaji: str, english: str | None, native: str, synonyms: list[str]
) -> list[dict[str, str]]:
    out = [{"kind": "romaji", "language": "ja", "name": romaji}]
    if english:
        out.append({"kind": "english", "language": "en", "name": english})
    out.append({"kind": "native", "language": "ja", "name": native})
    out += [{"kind": "synonym", "language": "en", "name": s} for s in synonyms]
    return out


def generated(g: int, rnd: random.Random) -> tuple[str, list[dict[str, str]]]:
    """Title ``g`` (unique for g < 125,000): its romaji name and its 3 to 6 names."""
    n = len(VOCABULARY)
    a, b, c = VOCABULARY[g % n], VOCABULARY[(g // n) % n], VOCABULARY[(g // (n * n)) % n]
    pattern = (g * 7 + g // n) % 3
    if pattern == 0:
        romaji, native, english = (
            f"{a[0]} no {b[0]}",
            f"{a[1]}の{b[1]}",
            f"the {b[2]} of the {a[2]}",
        )
    elif pattern == 1:
        romaji, native, english = f"{a[0]} to {b[0]}", f"{a[1]}と{b[1]}", f"{a[2]} and {b[2]}"
    else:
        romaji, native, english = f"{a[0]} {b[0]}", f"{a[1]}{b[1]}", f"{a[2]} {b[2]}"
    romaji, english = _cap(romaji), _cap(english)
    if g % 2:
        # An arc after a colon: "Hoshi no Yume: Kaze-hen" / "...: Wind Arc" / "星の夢 風編".
        romaji += f": {_cap(c[0])}-hen"
        english += f": {_cap(c[2])} Arc"
        native += f" {c[1]}編"
    else:
        # A third word: "Hoshi no Yume Monogatari" / "... Story" / "星の夢物語".
        romaji += f" {_cap(c[0])}"
        english += f" {_cap(c[2])}"
        native += c[1]
    synonyms = []
    initials = "".join(w[0] for w in english.split(":")[0].split() if w[0].isalpha())
    if len(initials) >= 2 and rnd.random() < 0.7:
        synonyms.append(initials.upper())
    if romaji.translate(_ASCII_MACRONS) != romaji and rnd.random() < 0.5:
        synonyms.append(romaji.translate(_ASCII_MACRONS))
    if rnd.random() < 0.3:
        synonyms.append(f"{_cap(a[0])} {_cap(b[0])} {g}")
    return romaji, _names(romaji, english, native, synonyms)


def _row(
    g: int, slug: str, romaji: str, names: list[dict[str, str]], rnd: random.Random
) -> tuple[Any, ...]:
    search_names, name_keys, grams = search_document(romaji, names)
    words = [v[2] for v in rnd.sample(VOCABULARY, 3)]
    return (
        uuid.uuid4(),
        slug,
        romaji,
        TYPES[g % 5],
        1960 + g % 65,
        f"A tale of {words[0]} and {words[1]} in the {words[2]}.",
        [GENRES[g % 12], GENRES[(g // 12 + 5) % 12]],
        ["ja", "en"],
        ["tv"],
        (g % 100) / 10.0,
        json.dumps(names, ensure_ascii=False),
        search_names,
        name_keys,
        grams,
    )


COLUMNS = [
    "id", "slug", "name", "type", "year", "synopsis", "genres", "languages", "platforms",
    "rating_avg", "names", "search_names", "name_keys", "cjk_grams",
]  # fmt: skip


def rows(n: int, seed: int = 19) -> Iterator[tuple[Any, ...]]:
    """The real titles, then ``n`` generated ones (``n`` in all)."""
    rnd = random.Random(seed)  # noqa: S311 - a reproducible catalog, not a secret
    for i, (slug, (romaji, english, native, synonyms)) in enumerate(REAL.items()):
        yield _row(i, slug, romaji, _names(romaji, english, native, synonyms), rnd)
    for g in range(len(REAL), n):
        romaji, names = generated(g, rnd)
        yield _row(g, f"title-{g}", romaji, names, rnd)
