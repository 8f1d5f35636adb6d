"""A title's names (romaji, English, native, synonyms): normalising, the viewer's
display name, and the folded search keys every name is found by.

Search keys are built at write time into ``titles.search_names`` (one key a
line) and ``titles.name_keys`` (exact names): lower case, diacritics dropped
(``Shōnen`` → ``shonen``, also kept as ``shounen`` since both spellings are
common), kana read as Hepburn romaji (``しんげき`` → ``shingeki``, hiragana and
katakana alike, and Latin names also without their spaces, since kana has
none). A query is folded the same way, so ``shounen``, ``shōnen``, ``shonen``
and ``ショウネン`` all reach the same title.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

NAME_KINDS = ("romaji", "english", "native", "synonym")

_SPACES = re.compile(r"\s+")


def normalize_name(value: str) -> str:
    """NFKC, inner whitespace collapsed, no control or unassigned characters."""
    value = unicodedata.normalize("NFKC", value)
    if any(unicodedata.category(c) in {"Cc", "Cs", "Co", "Cn"} for c in value):
        raise ValueError("control or unassigned characters are not allowed in a name")
    return _SPACES.sub(" ", value).strip()


# --- kana → romaji (Hepburn), a fixed table --------------------------------

_KANA: dict[str, str] = {}


def _row(kana: str, romaji: str) -> None:
    for k, r in zip(kana, romaji.split(), strict=True):
        _KANA[k] = r


_row("あいうえお", "a i u e o")
_row("かきくけこ", "ka ki ku ke ko")
_row("がぎぐげご", "ga gi gu ge go")
_row("さしすせそ", "sa shi su se so")
_row("ざじずぜぞ", "za ji zu ze zo")
_row("たちつてと", "ta chi tsu te to")
_row("だぢづでど", "da ji zu de do")
_row("なにぬねの", "na ni nu ne no")
_row("はひふへほ", "ha hi fu he ho")
_row("ばびぶべぼ", "ba bi bu be bo")
_row("ぱぴぷぺぽ", "pa pi pu pe po")
_row("まみむめも", "ma mi mu me mo")
_row("やゆよ", "ya yu yo")
_row("らりるれろ", "ra ri ru re ro")
_row("わゐゑをん", "wa i e o n")
_row("ぁぃぅぇぉゔ", "a i u e o vu")
_YOON = {"ゃ": "a", "ゅ": "u", "ょ": "o"}
_KANA_RE = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc]")
_CJK_RUN = re.compile(
    r"[\u3041-\u3096\u30a1-\u30fa\u30fc\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+"
)
_KANJI_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _hiragana(text: str) -> str:
    """Katakana folded onto hiragana (same table, offset 0x60)."""
    return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)


def has_kana(text: str) -> bool:
    return _KANA_RE.search(text) is not None


def has_kanji(text: str) -> bool:
    return _KANJI_RE.search(text) is not None


def is_cjk(text: str) -> bool:
    return _KANJI_RE.search(text) is not None or has_kana(text)


def kana_to_romaji(text: str) -> str:
    """Hepburn romaji of the kana in ``text``; other characters pass through."""
    s = _hiragana(text)
    out: list[str] = []
    i = 0
    double = False
    while i < len(s):
        c = s[i]
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if c == "っ":
            double = True
            i += 1
            continue
        if c == "ー":
            # A long vowel mark repeats the vowel before it (ラーメン → raamen).
            if out and out[-1][-1:] in "aiueo":
                out.append(out[-1][-1])
            i += 1
            continue
        roma = _KANA.get(c)
        if roma is None:
            out.append(c)
            double = False
            i += 1
            continue
        if nxt in _YOON and roma.endswith("i") and len(roma) > 1:
            base = roma[:-1]
            # しゃ → sha, ちゃ → cha, じゃ → ja; きゃ → kya.
            roma = (base if base in {"sh", "ch", "j"} else base + "y") + _YOON[nxt]
            i += 1
        if double and roma[0] not in "aiueon":
            roma = ("t" if roma.startswith("ch") else roma[0]) + roma
        double = False
        if c == "ん" and nxt and _KANA.get(_hiragana(nxt), "x")[0] in "aiueoy":
            roma = "n'"
        out.append(roma)
        i += 1
    return "".join(out).replace("'", "")


# --- folding ------------------------------------------------------------------

_MACRON_OU = str.maketrans({"ō": "ou", "ū": "uu", "ô": "ou", "û": "uu"})


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    # Dakuten are combining marks too: put kana back together.
    return unicodedata.normalize("NFC", stripped) if not has_kana(text) else text


def fold(text: str) -> str:
    """The form names and queries are compared in: katakana as hiragana."""
    text = _hiragana(unicodedata.normalize("NFKC", text).lower())
    return _SPACES.sub(" ", _strip_marks(text)).strip()


def keys_of(name: str) -> list[str]:
    """Every folded form a name is found by (its own first)."""
    lowered = _SPACES.sub(" ", unicodedata.normalize("NFKC", name).lower()).strip()
    keys = [fold(name)]
    # Kana alone has one reading; kanji would need a dictionary.
    if has_kana(name) and not has_kanji(name):
        keys.append(fold(kana_to_romaji(lowered)))
    keys.append(fold(lowered.translate(_MACRON_OU)))
    # Long vowels are written ou, ō or o: "shounen" is also found as "shonen".
    keys.append(keys[0].replace("ou", "o").replace("uu", "u"))
    if not is_cjk(name):
        # Kana has no spaces: しんげきのきょじん reads "shingekinokyojin".
        keys += [k.replace(" ", "") for k in keys if " " in k]
    return list(dict.fromkeys(k for k in keys if k))


def cjk_grams(text: str) -> list[str]:
    """The two-character runs of the CJK text in ``text``: what a short CJK query
    is looked up by (trigrams need three characters)."""
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return list(dict.fromkeys(grams))


def search_document(
    primary: str, names: Iterable[Mapping[str, Any]]
) -> tuple[str, list[str], list[str]]:
    """``(search_names, name_keys, cjk_grams)`` for a title: a line per key, the
    keys, and the CJK bigrams of every name."""
    keys: list[str] = []
    grams: list[str] = []
    for n in [primary, *(n["name"] for n in names)]:
        keys.extend(keys_of(n))
        grams.extend(cjk_grams(fold(n)))
    keys = list(dict.fromkeys(keys))
    return "\n" + "\n".join(keys) + "\n", keys, list(dict.fromkeys(grams))


_LEXICON_WORD = re.compile(r"^[^\W\d_]{3,20}$")


def lexicon_words(primary: str, names: Iterable[Mapping[str, Any]]) -> list[str]:
    """The words of a title's names that a misspelt query word may be corrected
    to: letters only, 3 to 20 of them, folded (with their ou/o spellings)."""
    words: list[str] = []
    for n in [primary, *(n["name"] for n in names)]:
        spaced = " " in fold(n)
        for key in keys_of(n):
            if spaced and " " not in key:
                continue  # a name run together is no word
            words.extend(
                w for w in re.findall(r"\w+", key) if _LEXICON_WORD.match(w) and not is_cjk(w)
            )
    return list(dict.fromkeys(words))


def query_keys(q: str) -> list[str]:
    """The folded forms of a query: itself, and its romaji if it has kana."""
    return keys_of(q)


# --- the viewer's language ------------------------------------------------------


def preferred_language(lang: str | None, accept_language: str | None) -> str | None:
    """The primary subtag of ``?lang=`` or else of the first ``Accept-Language`` range."""
    raw = lang
    if not raw and accept_language:
        ranges = []
        for i, part in enumerate(accept_language.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            if tag and tag != "*" and q > 0:
                ranges.append((-q, i, tag))
        raw = min(ranges)[2] if ranges else None
    if not raw:
        return None
    primary = raw.strip().split("-")[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


def display_name(primary: str, names: Iterable[Mapping[str, Any]], language: str | None) -> str:
    """``en`` → the English name; ``ja``/``zh``/``ko`` → the native name in that
    language; otherwise (or lacking it) the romaji name, else the title's own."""
    names = list(names)

    def first(kind: str, lang: str | None = None) -> str | None:
        for n in names:
            if n["kind"] == kind and (lang is None or n["language"].split("-")[0] == lang):
                return str(n["name"])
        return None

    wanted = None
    if language == "en":
        wanted = first("english")
    elif language:
        wanted = first("native", language)
    return wanted or first("romaji") or primary
