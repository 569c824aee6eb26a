"""The question as typed against the ways people ask for each entry: a second, plain view of a match.

The index reads a question the careful way: content words only, stemmed, aliases expanded,
typos corrected. That is what finds the entry, but it forgets how the question is put ("what is",
"how much", "should we"), which is often what tells the entry that answers it from its neighbour
("What is edge computing?" beside "Is edge computing worth it?"). This view keeps it: every word
of two letters or more, folded and unstemmed, TF-IDF weighted over the entries' phrasings
(question, alternates, title, aliases, taught phrasings). A candidate's similarity is its closest
phrasing's cosine with the question; words no phrasing uses are left out. The confidence model
takes it as one more feature of the match.
"""
from __future__ import annotations

import math
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from bot.analysis import fold, unmentioned
from bot.retrieval import Document

# Words are runs of letters and digits after folding (lower case, accents off), as the index reads
# them; every other byte is a space. A byte table splits text far faster than a pattern does.
_WORDLY = set((string.ascii_lowercase + string.digits).encode())
_SPACES = bytes(b if b in _WORDLY else 32 for b in range(256))
KEPT = 4096  # entries whose weighted phrasings are kept at once; past that the kept ones are let go

Vector = dict[str, float]


def _tokens(text: str) -> list[bytes]:
    # Mentions ("<!here>", "@everyone") are who, not what: the index leaves them out too.
    return fold(unmentioned(text)).encode("utf-8", "replace").translate(_SPACES).split()


def _words(text: str) -> Counter[str]:
    """The words of two characters or more, counted."""
    return Counter(w.decode() for w in _tokens(text) if len(w) > 1)


def _unit(weights: Vector) -> Vector:
    length = math.sqrt(sum(w * w for w in weights.values()))
    return {t: w / length for t, w in weights.items()} if length else {}


class Surface:
    """Phrasings of every entry as unit TF-IDF vectors of their plain words (smoothed IDF, sublinear TF).

    Word counts are taken on first use; an entry's vectors are weighted the first time it is a
    candidate, as word -> [(phrasing, weight)], so a question costs its words' postings.
    """

    def __init__(self, phrasings: Iterable[tuple[str, Sequence[str]]]):
        self._texts = {entry_id: [t for t in texts if t] for entry_id, texts in phrasings}
        self._idf: dict[str, float] | None = None
        self._lock = threading.Lock()
        self._postings: dict[str, dict[str, list[tuple[int, float]]]] = {}

    @property
    def idf(self) -> dict[str, float]:
        """Word -> IDF over all phrasings, counted when first needed (a large knowledge base's start
        does not wait for it).

        How many phrasings use a word is taken as how often the phrasings use it (a word seldom
        comes twice in one phrasing): one pass over all of them together."""
        if self._idf is None:
            with self._lock:
                if self._idf is None:
                    every = [t for texts in self._texts.values() for t in texts]
                    counts = Counter(_tokens("\n".join(every)))
                    n = len(every)
                    self._idf = {w.decode(): math.log((1 + n) / (1 + min(k, n))) + 1.0
                                 for w, k in counts.items() if len(w) > 1}
        return self._idf

    @classmethod
    def of(cls, documents: Iterable[Document]) -> "Surface":
        """The view over the phrasing fields of index documents."""
        return cls((d.id, [t for f in d.fields if f.phrasings for t in f.texts]) for d in documents)

    def warm(self) -> None:
        """Count the IDF now (at a start or a reload, off any request)."""
        self.idf

    def _vector(self, words: Counter[str]) -> Vector:
        idf = self.idf
        return _unit({w: (1.0 + math.log(k)) * idf[w] for w, k in words.items() if w in idf})

    def _entry(self, entry_id: str) -> dict[str, list[tuple[int, float]]]:
        postings = self._postings.get(entry_id)
        if postings is None:
            postings = {}
            for i, text in enumerate(self._texts.get(entry_id, ())):
                for w, weight in self._vector(_words(text)).items():
                    postings.setdefault(w, []).append((i, weight))
            if len(self._postings) >= KEPT:
                self._postings.clear()
            self._postings[entry_id] = postings
        return postings

    def similarity(self, question: str) -> Callable[[str], float]:
        """entry id -> the cosine of the question with that entry's closest phrasing (0 for an unknown id)."""
        q = self._vector(_words(question))

        def closest(entry_id: str) -> float:
            postings = self._entry(entry_id)
            sums: dict[int, float] = {}
            for w, x in q.items():
                for i, v in postings.get(w, ()):
                    sums[i] = sums.get(i, 0.0) + x * v
            return max(sums.values(), default=0.0)

        return closest
