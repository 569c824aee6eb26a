"""Text analysis shared by the index and the queries: cleaning, aliases, tokens, stems."""
from __future__ import annotations

import functools
import os
import re
import unicodedata
from pathlib import Path
from collections.abc import Mapping

import snowballstemmer

# Words that carry no topic in a chat question. Kept short on purpose: sklearn's English list
# drops words such as "system", "back" and "bill" that matter here.
STOP_WORDS = frozenset(
    """
    a about above after again all also am an and any anyone are aren as at be because been
    being but by can could did do does doing don done for from get gets getting got had has
    have having he her here hers him his how i if in into is isn it its itself just know let
    lets like me more most my myself need needs no nor not now of on once only or other our
    ours out over own please pls really right same say she should so some such tell than that
    thats the their theirs them then there these they this those thx thanks through to too
    under until up us very want was we were what whats when where which while who whom why
    will with would you your yours yourself hey hi hello ok okay yeah yes guys folks team
    trendbot bot question questions think thought still ever much many way ways thing things
    something anything kind sort lot lots gonna wanna im ive dont doesnt isnt arent whos
    going goes actually anyway someone said says etc via per
    ur lol lmao tbh btw imo imho idk rn nah yo sup wat wich plz gimme kinda sorta ngl iirc afaik
    fyi pls plz ty tyvm hmm hm umm uh quick q quickq
    ppl people shud shld thru tho abt smth sth wats wut teh bc cuz coz ya yall gotta tryna lemme dunno
    re ll ve didnt cant wont wouldnt shouldnt couldnt hasnt havent wasnt werent youre theyre hows wheres whys
    besides else even asking asked stuff exactly mostly anymore nowadays bunch according basically
    literally honestly seriously pretty maybe wants wanted curious wondering
    """.split()
)

# Stop words and single letters ("what's" leaves an "s"); single digits stay.
_DROP = STOP_WORDS | frozenset("abcdefghijklmnopqrstuvwxyz")

# Control and format characters (zero-width, bidi overrides) are dropped; line and tab
# characters become spaces so words stay apart.
_SPACE_LIKE = {"\n", "\r", "\t", "\v", "\f", "\u2028", "\u2029", "\u0085"}
_TOKEN = re.compile(r"[a-z0-9]+")
SEPARATOR = "\x1e"  # between texts analysed together: whitespace to every pattern here, a word to none
_TOKEN_OR_SEPARATOR = re.compile(r"[a-z0-9]+|\x1e")
# Platform mentions and links are who or where, not what: "<@U123>", "<#C1|general>", "<!here>",
# Discord's "<@123>", "<@&123>", "<#123>", and bare "@everyone", "@here", "@someone".
_MENTION = re.compile(r"<[@#!][^<>\s]{0,80}>|(?<![\w.])@[\w.-]+")
_SPACES = re.compile(r"\s+")


_HYPHEN = re.compile(r"(?<=[a-z0-9])-(?=[a-z0-9])")


def _dehyphen(text: str) -> str:
    return _HYPHEN.sub(" ", text)


def clean(text: str) -> str:
    """Return text in NFKC form with control and zero-width characters removed."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch in _SPACE_LIKE:
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return _SPACES.sub(" ", "".join(out)).strip()


def unmentioned(text: str) -> str:
    """The text with platform mentions and bare @words blanked out (who or where, not what). Most texts
    hold neither "@" nor "<", and skip the slowest pattern."""
    return _MENTION.sub(" ", text) if "@" in text or "<" in text else text


def fold(text: str) -> str:
    """Lowercase and strip accents, for matching."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_stemmer = snowballstemmer.stemmer("english")


class _Stems(dict):
    """word -> stem, filled on first use; lookups of known words stay in C."""

    def __missing__(self, word: str) -> str:
        value = word if word.isdigit() else _stemmer.stemWord(word)
        if len(self) < 1_000_000:  # bounded: a stream of odd words cannot grow it forever
            self[word] = value
        return value


_stems = _Stems()
stem = _stems.__getitem__


ENGLISH_FLOOR = 100  # words rarer than this in English count as not English (typos, names, jargon)


@functools.lru_cache(maxsize=1)
def _english() -> dict[str, str]:
    """English word -> corpus count, for words at least ENGLISH_FLOOR common.

    The counts are pyspellchecker's English word frequencies (a gzipped JSON of 160,000 words that
    takes ~0.15 s to parse); the common third of them is kept as a small tab-separated file in
    the user's cache folder, which later starts read in ~0.04 s.
    """
    cache = _cache_dir() / f"english-{ENGLISH_FLOOR}.tsv"
    try:
        return dict(line.split("\t", 1) for line in cache.read_text(encoding="utf-8").splitlines())
    except (OSError, ValueError):
        pass
    import gzip
    import json
    from importlib.resources import files

    raw = json.loads(gzip.decompress((files("spellchecker") / "resources" / "en.json.gz").read_bytes()))
    common = {w: str(n) for w, n in raw.items() if n >= ENGLISH_FLOOR and "\t" not in w and "\n" not in w}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(f"{w}\t{n}" for w, n in common.items()), encoding="utf-8")
        os.replace(tmp, cache)  # atomic: a reader sees the old file or the whole new one
    except OSError:
        pass  # a read-only home: keep it in memory only
    return common


cache_folder: Path | None = None  # where the word list is kept; the app layer sets it from TRENDBOT_CACHE_DIR


def _cache_dir() -> Path:
    if cache_folder is not None:
        return cache_folder
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trendbot"


def settings() -> list:
    """What, besides the aliases, decides the terms of a text: part of an index file's key."""
    return [sorted(_DROP), _TOKEN.pattern, _MENTION.pattern, _HYPHEN.pattern, unicodedata.unidata_version]


@functools.lru_cache(maxsize=65536)
def english_frequency(word: str) -> int:
    """How often `word` occurs in English (a corpus count; 0 for words rarer than ENGLISH_FLOOR)."""
    return int(_english().get(word, 0))


def is_english_word(word: str, min_frequency: int) -> bool:
    """Whether `word` is an ordinary English word (so an unknown word, not a typo)."""
    return english_frequency(word) >= min_frequency


def dropped(word: str) -> bool:
    """Whether a token is left out of the words (a stop word or a single letter)."""
    return word in _DROP


class Analyzer:
    """Turns text into the terms the index and the queries share.

    Aliases are applied to the folded text first (longest alias first, whole words only), so
    `k8s`, `K8S` and `kubernetes` all become the same terms; then the text is split into
    words, stop words are dropped and the rest are stemmed.
    """

    def __init__(self, aliases: Mapping[str, str] | None = None):
        self.aliases: dict[str, str] = {}
        for k, v in (aliases or {}).items():
            # Hyphens are spaces for matching: "functions-as-a-service" finds "functions as a service".
            # A hyphenated canonical term is one word ("real-time" -> "realtime"), so its parts
            # don't match on their own: "what time is it" is not about real-time systems.
            self.aliases.setdefault(_dehyphen(fold(k).strip()), _HYPHEN.sub("", fold(v).strip()))
        if self.aliases:
            keys = sorted(self.aliases, key=len, reverse=True)
            self._alias_re = re.compile(
                r"(?<![a-z0-9])(" + "|".join(re.escape(k) for k in keys) + r")(?![a-z0-9])"
            )
        else:
            self._alias_re = None

    def expand(self, text: str) -> str:
        """Folded text with mentions dropped and every alias replaced by its canonical term."""
        text = fold(unmentioned(text))
        if "-" in text:
            text = _dehyphen(text)
        if self._alias_re is None:
            return text
        return self._alias_re.sub(lambda m: self.aliases[m.group(1)], text)

    def typed(self, text: str) -> tuple[str, ...]:
        """Every word as typed, stop words included (alias-expanded, folded, not stemmed)."""
        return tuple(_TOKEN.findall(self.expand(text)))

    def words(self, text: str) -> list[str]:
        """Content words (alias-expanded, folded, not stemmed) in order."""
        return [w for w in self.typed(text) if w not in _DROP]

    def tokens(self, texts: list[str]) -> list[str]:
        """The tokens of many texts, each text's followed by SEPARATOR, stop words still in (`dropped`
        tells them): what `words` gives each text, with one pass of each pattern over them all."""
        if any(SEPARATOR in t for t in texts):
            return [w for t in texts for w in (*_TOKEN.findall(self.expand(t)), SEPARATOR)]
        return _TOKEN_OR_SEPARATOR.findall(self.expand(SEPARATOR.join(texts) + SEPARATOR))

    def terms(self, text: str) -> list[str]:
        """Stemmed unigrams and adjacent bigrams: the index's features."""
        return self.terms_of_words(self.words(text))

    @staticmethod
    def terms_of_words(words: list[str]) -> list[str]:
        """Stemmed unigrams and adjacent bigrams of already-split words."""
        stems = list(map(stem, words))
        return stems + list(map(" ".join, zip(stems, stems[1:])))
