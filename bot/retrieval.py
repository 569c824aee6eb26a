"""TF-IDF retrieval over the knowledge entries: fit once, then each query is a sparse dot product.

Each entry (trend or FAQ) is scored three ways and the three are blended:

- the *document* vector: a weighted sum of its fields (question, alternates, title, aliases,
  answer, key points, tools), so many weak matches across the entry still count;
- the best single *phrasing* (the question, one alternate, the title or one alias), so a
  question that closely matches one way people ask it wins even when the entry is long;
- how much of the query's TF-IDF weight the entry contains at all (query coverage), so a
  question whose informative words ("2033", "growth") all appear in a long answer still ranks it.

Unknown query words that are not ordinary English words ("kubernets", not "playing") are
corrected against the index vocabulary with rapidfuzz before scoring. The score is then damped
by the share of the query's words the index knows, so a question that is mostly about something
else ("best pizza in the cloud city") scores low.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.analysis import Analyzer, is_english_word, stem
from bot.postings import IndexData

# The blend of the three scores; they sum to 1 so a perfect match scores 1.
DOC_WEIGHT, PHRASE_WEIGHT, COVER_WEIGHT = 0.25, 0.40, 0.35
COVERAGE_POWER = 1.5  # how hard unknown words pull the score down
ENGLISH_MIN_FREQUENCY = 100  # a word this common in English is a word, not a typo to correct
GATHER_LIMIT = 5_000  # postings a query reads at once; above it, terms are opened shortest first
DENSE_ROWS = 20_000  # up to this many entries (or phrasings), a search sums scores over all of them at once
HELD_ROWS = 4_096  # a term used by at most this many entries keeps their rows as a set, for "does it hold"
HELD_KEPT = 8_192  # such sets kept at once; past that the kept ones are let go
BIGRAMS_AS_DICT = 200_000  # up to this many bigrams are also looked up through a dict (made on first use)


@dataclass(frozen=True)
class Field:
    """Texts that make up one field of an entry, the field's weight, and whether each text is
    also a phrasing of the entry (a way people ask for it: question, alternate, title, alias)."""

    texts: tuple[str, ...]
    weight: float
    phrasings: bool = False


@dataclass(frozen=True)
class Document:
    """What the index needs of one entry: its id and weighted fields."""

    id: str
    fields: tuple[Field, ...]
    kind: str = ""  # "trend" or "faq": a feature of the match, not used for scoring


@dataclass(frozen=True)
class Hit:
    """One scored entry: the blended score and the three parts it is blended from."""

    entry_id: str
    score: float
    doc: float = 0.0  # cosine with the whole entry
    cover: float = 0.0  # share of the question's weight the entry holds, by field weight
    phrase: float = 0.0  # cosine with the closest single phrasing


@dataclass(frozen=True)
class Results:
    """The ranked hits for one query and how the query was read."""

    hits: tuple[Hit, ...]
    words: tuple[str, ...]  # content words after aliases and corrections
    corrections: tuple[tuple[str, str], ...]  # (typed, corrected)
    unknown: tuple[str, ...]  # words the index does not know and could not correct
    coverage: float  # share of content words the index knows
    terms: tuple[tuple[int, float], ...] = ()  # the question's (term column, weight), weights summing to 1

    @property
    def best(self) -> Hit | None:
        """The top hit, if any."""
        return self.hits[0] if self.hits else None


def _max_distance(word: str) -> int:
    """Edits allowed when correcting a word: none up to 4 letters, one up to 7, then two.

    Four letters and fewer only get two swapped letters put back ("rsut"): too many real terms
    sit one other edit from a known word ("cors" -> "core", "helm" -> "help").
    """
    if len(word) < 5:
        return 0
    return 1 if len(word) <= 7 else 2


class Vocabulary(Mapping[str, int]):
    """Term -> column: unigram stems through a dict, bigrams ("a b") by their key in a sorted array
    (and, in a small index, through a dict of the same keys: one lookup instead of four numpy calls)."""

    def __init__(self, data: IndexData):
        self._unigram_id = {t: i for i, t in enumerate(data.unigrams)}
        self._unigrams = data.unigrams
        self._unigram_column = data.unigram_columns.tolist()
        self._keys = data.bigram_keys
        self._bigram_columns = data.bigram_columns
        self._bigram_dict: dict[int, int] | None = None
        self._size = data.columns

    def __getitem__(self, term: str) -> int:
        column = self.get(term)
        if column is None:
            raise KeyError(term)
        return column

    def get(self, term: str, default: int | None = None) -> int | None:  # type: ignore[override]
        """The column of a unigram or bigram stem, or `default`."""
        if " " not in term:
            i = self._unigram_id.get(term)
            return default if i is None else self._unigram_column[i]
        first, _, second = term.partition(" ")
        found = self._bigrams([(self._unigram_id.get(first), self._unigram_id.get(second))])[0]
        return default if found is None else found

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.get(term) is not None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        yield from self._unigrams
        n = len(self._unigrams)
        for key in self._keys.tolist():
            yield f"{self._unigrams[key // n]} {self._unigrams[key % n]}"

    def terms(self, stems: list[str]) -> list[int | None]:
        """Columns of the stems and then of each adjacent pair (Analyzer.terms_of_words order); None where unknown."""
        get = self._unigram_id.get
        ids = [get(s) for s in stems]
        column = self._unigram_column
        return [None if i is None else column[i] for i in ids] + self._bigrams(list(zip(ids, ids[1:])))

    def _bigrams(self, pairs: list[tuple[int | None, int | None]]) -> list[int | None]:
        if not pairs or not len(self._keys):
            return [None] * len(pairs)
        n = len(self._unigrams)
        if len(self._keys) <= BIGRAMS_AS_DICT:
            found = self._bigram_dict
            if found is None:
                found = self._bigram_dict = dict(zip(self._keys.tolist(), self._bigram_columns.tolist()))
            return [None if a is None or b is None else found.get(a * n + b) for a, b in pairs]
        keys = np.asarray([-1 if a is None or b is None else a * n + b for a, b in pairs], dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        at[at == len(self._keys)] = 0
        found = (self._keys[at] == keys).tolist()
        return [c if f else None for c, f in zip(self._bigram_columns[at].tolist(), found)]


class Index:
    """An immutable TF-IDF index over documents: built by `bot.fitting.build`, or loaded from the cache."""

    def __init__(self, analyzer: Analyzer, data: IndexData):
        self.analyzer = analyzer
        self.data = data
        self.ids = list(data.ids)
        self._rows = {entry_id: row for row, entry_id in enumerate(self.ids)}
        self._kinds = data.kinds
        self.max_idf = float(data.idf.max()) if data.columns else 1.0
        self.vocabulary = Vocabulary(data)
        self._idf = data.idf
        self._entries, self._phrases = data.entries, data.phrases
        self._levels = data.presence_levels
        self._owner = data.phrase_owner
        # Where each entry's phrasings start (they are grouped by entry), and end at the next's start.
        self._phrase_start = np.concatenate(([0], np.cumsum(np.bincount(data.phrase_owner, minlength=len(self.ids)))))
        self.known_words = dict(zip(data.words, data.word_counts.tolist()))  # surface word -> how many documents use it
        # Correction candidates by (length, first letter) and (length, second letter): a typo
        # rarely changes both of a word's first two letters, and small buckets keep it fast.
        buckets: dict[tuple[int, int, str], list[str]] = defaultdict(list)
        for w in data.words:  # most used first
            if len(w) >= 2 and not w.isdigit():
                buckets[(len(w), 0, w[0])].append(w)
                buckets[(len(w), 1, w[1])].append(w)
        self._buckets = dict(buckets)
        self._held: dict[int, frozenset[int]] = {}  # term column -> the rows of the entries holding it

    def __len__(self) -> int:
        return len(self.ids)

    def correct(self, word: str) -> str | None:
        """The closest known word within the allowed edits (most used first on ties), or None."""
        limit = _max_distance(word)
        if not limit:
            swaps = (word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1))
            return next((w for w in swaps if len(word) == 4 and w != word and w in self.known_words), None)
        best, best_key = None, None
        for length in range(len(word) - limit, len(word) + limit + 1):
            for position in (0, 1):
                candidates = self._buckets.get((length, position, word[position]))
                if not candidates:
                    continue
                found = process.extractOne(word, candidates, scorer=DamerauLevenshtein.distance, score_cutoff=limit)
                if found is not None:
                    key = (found[1], -self.known_words[found[0]])
                    if best_key is None or key < best_key:
                        best, best_key = found[0], key
        return best

    def read(self, text: str) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """Content words of a query with unknown words corrected: (words, corrections, unknown)."""
        words, corrections, unknown = [], [], []
        for w in self.analyzer.words(text):
            if w in self.known_words or stem(w) in self.vocabulary or w.isdigit():
                words.append(w)
                continue
            fixed = None if is_english_word(w, ENGLISH_MIN_FREQUENCY) else self.correct(w)
            if fixed is None:
                unknown.append(w)
                words.append(w)
            else:
                corrections.append((w, fixed))
                words.append(fixed)
        if corrections:  # a corrected word may complete an alias ("continous integration")
            words = self.analyzer.words(" ".join(words))
        return words, corrections, unknown

    def kind(self, entry_id: str) -> str:
        """The kind its document was built with ("trend", "faq")."""
        return self._kinds[self._rows[entry_id]]

    def column(self, term: str) -> int | None:
        """The column of a (stemmed) term, or None when no entry uses it."""
        return self.vocabulary.get(term)

    def idf(self, column: int) -> float:
        """The inverse document frequency of a term column."""
        return float(self._idf[column])

    def has(self, entry_id: str, column: int) -> bool:
        """Whether the entry holds the term anywhere (any field)."""
        start, end = self._entries.span(column)
        row = self._rows[entry_id]
        if end - start <= HELD_ROWS:
            return row in self._rows_holding(column, start, end)
        rows = self._entries.rows
        at = start + int(np.searchsorted(rows[start:end], row))
        return at < end and int(rows[at]) == row

    def _rows_holding(self, column: int, start: int, end: int) -> frozenset[int]:
        """The rows of the entries that hold a term, as a set: made once per term, and kept."""
        found = self._held.get(column)
        if found is None:
            if len(self._held) >= HELD_KEPT:
                self._held = {}
            found = self._held[column] = frozenset(self._entries.rows[start:end].tolist())
        return found

    def holding(self, entry_ids: Sequence[str], columns: Sequence[int]) -> list[set[int]]:
        """For each entry, which of the columns it holds: one lookup per column for all the entries."""
        found: list[set[int]] = [set() for _ in entry_ids]
        if not entry_ids:
            return found
        rows = self._entries.rows
        mine = [self._rows[e] for e in entry_ids]
        wanted = np.asarray(mine, dtype=rows.dtype)
        indptr = self._entries.indptr
        for column in dict.fromkeys(columns):
            start, end = int(indptr[column]), int(indptr[column + 1])
            if end - start <= HELD_ROWS:
                held = self._rows_holding(column, start, end)
                for i, row in enumerate(mine):
                    if row in held:
                        found[i].add(column)
                continue
            segment = rows[start:end]
            at = np.searchsorted(segment, wanted)
            inside = at < len(segment)
            hits = np.zeros(len(wanted), dtype=bool)
            hits[inside] = segment[at[inside]] == wanted[inside]
            for i in np.flatnonzero(hits).tolist():
                found[i].add(column)
        return found

    def holds(self, entry_id: str, terms: Iterable[tuple[int, float]]) -> float:
        """The share of a question's weight (its `Results.terms`) the entry holds."""
        return sum(w for column, w in terms if self.has(entry_id, column))

    def columns(self, text: str) -> list[int]:
        """The term columns of a text (unknown terms left out): what a unit of an answer holds."""
        return [c for c in self.vocabulary.terms(list(map(stem, self.analyzer.words(text)))) if c is not None]

    def vector(self, words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """The L2-normalised TF-IDF vector of already-read words, as (columns, values)."""
        counts: dict[int, int] = defaultdict(int)
        for col in self.vocabulary.terms(list(map(stem, words))):
            if col is not None:
                counts[col] += 1
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        vals = (1.0 + np.log(tf)) * self._idf[cols]
        if len(vals):
            vals /= np.sqrt(float(vals @ vals))
        return cols, vals

    def search(self, text: str, k: int = 5) -> Results:
        """The top k entries for the question; only the postings of its own terms are read."""
        words, corrections, unknown = self.read(text)
        coverage = (len(words) - len(unknown)) / len(words) if words else 0.0
        cols, q = self.vector(words)
        if not len(cols):
            return Results((), tuple(words), tuple(corrections), tuple(unknown), coverage)
        rows, doc, cover, best = self.scores(cols, q, k)
        scores = DOC_WEIGHT * doc + COVER_WEIGHT * cover + PHRASE_WEIGHT * best
        damp = coverage ** COVERAGE_POWER
        hits = tuple(Hit(self.ids[rows[i]], float(scores[i]) * damp, float(doc[i]), float(cover[i]), float(best[i]))
                     for i in _top(scores, k))
        terms = tuple(zip(cols.tolist(), (q * q).tolist()))
        return Results(hits, tuple(words), tuple(corrections), tuple(unknown), coverage, terms)

    def scores(self, cols: np.ndarray, q: np.ndarray, k: int, gather_limit: int = GATHER_LIMIT
               ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """(rows, doc, cover, phrase) of candidate entries, rows ascending: every entry that can be in the top k.

        A query whose terms have few postings reads them all. Otherwise its terms are opened
        shortest postings first, until the k-th best score from the opened terms alone beats what
        the unopened ones could give an entry holding only them (their share of the query bounds
        each of the three scores). The candidates are the entries of the opened postings that the
        unopened terms could still lift to the k-th best; the long postings of common words are
        only looked up for them, never read whole. Either way a
        score adds up its terms in the query's order, so both ways give the same bits.
        """
        e, p = self._entries, self._phrases
        spans = (e.indptr[cols], e.indptr[cols + 1], p.indptr[cols], p.indptr[cols + 1])
        sizes = (spans[1] - spans[0]) + (spans[3] - spans[2])
        every = np.arange(len(cols))
        if int(sizes.sum()) <= gather_limit:
            return self._gathered(q, spans, every)
        order = np.argsort(sizes, kind="stable")
        q64 = q.astype(np.float64)
        doc_part, phrase_part = q64 * self.data.doc_max[cols], q64 * self.data.phrase_max[cols]
        share = q64 * q64
        opened = max(1, int(np.searchsorted(np.cumsum(sizes[order]), gather_limit, side="right")))
        while True:
            found = self._gathered(q, spans, np.sort(order[:opened]))
            rest = order[opened:]
            if not len(rest):
                return found
            if len(found[0]) >= k:
                partial = DOC_WEIGHT * found[1] + COVER_WEIGHT * found[2] + PHRASE_WEIGHT * found[3]
                kth = float(np.partition(partial, len(partial) - k)[len(partial) - k])
                more = _bound(doc_part[rest].sum(), share[rest].sum(), phrase_part[rest].sum())
                if kth > more:
                    # An entry whose opened terms leave it short of the k-th best even with the most
                    # the unopened ones could add is out already: only the others are scored in full.
                    rows = np.asarray(found[0], dtype=np.int64)[partial + more >= kth]
                    return self._exact(rows, q, spans, np.sort(order[:opened]))
            opened += 1

    def _gathered(self, q: np.ndarray, spans, terms: np.ndarray):
        """Scores from every posting of the given terms (positions in the query, ascending)."""
        e, p = self._entries, self._phrases
        weights = q[terms]
        at, lengths = _ranges(spans[0][terms], spans[1][terms])
        each = np.repeat(weights, lengths)
        rows, (doc, cover) = _sums(e.rows[at], len(self.ids), e.values[at] * each,
                                   self._levels[self.data.presence[at]] * (each * each))
        at, lengths = _ranges(spans[2][terms], spans[3][terms])
        phrases, (per_phrase,) = _sums(p.rows[at], len(self._owner), p.values[at] * np.repeat(weights, lengths))
        owners = self._owner[phrases].astype(np.int64)
        rows = rows.astype(np.int64)
        at = np.searchsorted(rows, owners)
        if len(owners) and (int(at.max()) >= len(rows) or not np.array_equal(rows[at], owners)):
            every = np.union1d(rows, owners)
            doc, cover = _spread(doc, rows, every), _spread(cover, rows, every)
            rows = every
            at = np.searchsorted(rows, owners)
        best = np.zeros(len(rows))
        np.maximum.at(best, at, per_phrase)
        return rows.tolist(), doc, cover, best

    def _exact(self, rows: np.ndarray, q: np.ndarray, spans, opened: np.ndarray):
        """(rows, doc, cover, phrase) of the given entries (ascending): the opened terms' postings read
        whole, every other term's looked up; each score summed over the terms in the query's order."""
        e, p = self._entries, self._phrases
        m, qq = len(q), q * q
        closed = np.setdiff1d(np.arange(m), opened)
        doc, cover = np.zeros((m, len(rows))), np.zeros((m, len(rows)))
        at, lengths = _ranges(spans[0][opened], spans[1][opened])
        term = np.repeat(opened, lengths)
        where, at, term = _among(rows, e.rows[at].astype(np.int64), at, term)
        doc[term, where] = e.values[at] * q[term]
        cover[term, where] = self._levels[self.data.presence[at]] * qq[term]
        keys = rows.astype(e.rows.dtype)
        for i in closed.tolist():
            a, b = int(spans[0][i]), int(spans[1][i])
            mine, theirs = _match(keys, e.rows[a:b])
            doc[i, mine] = e.values[a + theirs] * q[i]
            cover[i, mine] = self._levels[self.data.presence[a + theirs]] * qq[i]
        phrases, counts = _ranges(self._phrase_start[rows], self._phrase_start[rows + 1])
        per_phrase = np.zeros((m, len(phrases)))
        at, lengths = _ranges(spans[2][opened], spans[3][opened])
        term = np.repeat(opened, lengths)
        where, at, term = _among(phrases, p.rows[at].astype(np.int64), at, term)
        per_phrase[term, where] = p.values[at] * q[term]
        keys = phrases.astype(p.rows.dtype)
        for i in closed.tolist():
            c, d = int(spans[2][i]), int(spans[3][i])
            mine, theirs = _match(keys, p.rows[c:d])
            per_phrase[i, mine] = p.values[c + theirs] * q[i]
        best = np.zeros(len(rows))
        held = np.flatnonzero(counts)
        if len(held):
            best[held] = np.maximum.reduceat(_sum_rows(per_phrase), (np.cumsum(counts) - counts)[held])
        return rows.tolist(), _sum_rows(doc), _sum_rows(cover), best


def _among(rows: np.ndarray, found: np.ndarray, at: np.ndarray, term: np.ndarray):
    """Where in `rows` (ascending) each found row is, keeping only those it holds (with their `at` and `term`)."""
    where = np.searchsorted(rows, found)
    held = where < len(rows)
    held[held] = rows[where[held]] == found[held]
    return where[held], at[held], term[held]


def _sum_rows(parts: np.ndarray) -> np.ndarray:
    """The terms' contributions added one term after another, in the query's order (as bincount adds them)."""
    total = np.zeros(parts.shape[1])
    for row in parts:
        total += row
    return total


def _bound(doc: float, cover: float, phrase: float) -> float:
    """The most an entry can score from terms whose shares are given (sum of q*max doc value, of q*q, of
    q*max phrasing value): a unit vector's dot product with them is also at most their length."""
    length = float(np.sqrt(cover))
    return (DOC_WEIGHT * min(doc, length) + COVER_WEIGHT * cover + PHRASE_WEIGHT * min(phrase, length)) * (1 + 1e-5) + 1e-9


def _sums(keys: np.ndarray, size: int, *weights: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct keys (rows below `size`), ascending, and each weight array summed per key, in
    the keys' order (as bincount adds them). Up to DENSE_ROWS rows the sums are taken over all rows
    at once, a few numpy calls; past that only over the keys found, so a search of a large index
    costs its postings, not the index's length. Both give the same bits."""
    if size <= DENSE_ROWS:
        keys = keys.astype(np.intp)
        distinct = np.flatnonzero(np.bincount(keys, minlength=size))
        return distinct, [np.bincount(keys, weights=w, minlength=size)[distinct] for w in weights]
    distinct, inverse = _group(keys)
    return distinct, [np.bincount(inverse, weights=w, minlength=len(distinct)) for w in weights]


def _group(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and where each value is among them (np.unique's, by one stable sort)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.empty(len(values), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions starts[i]..ends[i]-1 of every range, in order, and each range's length."""
    lengths = (ends - starts).astype(np.int64)
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64) - offsets, lengths) + np.arange(total), lengths


def _match(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in keys, in rows) of the values both ascending arrays hold; the shorter one is looked up."""
    if not len(rows) or not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(rows) < len(keys):
        at = np.searchsorted(keys, rows)
        inside = np.flatnonzero(at < len(keys))
        same = keys[at[inside]] == rows[inside]
        return at[inside[same]], inside[same]
    at = np.searchsorted(rows, keys)
    inside = np.flatnonzero(at < len(rows))
    same = rows[at[inside]] == keys[inside]
    return inside[same], at[inside[same]]


def _spread(values: np.ndarray, rows: np.ndarray, every: np.ndarray) -> np.ndarray:
    out = np.zeros(len(every))
    out[np.searchsorted(every, rows)] = values
    return out


def _top(scores: np.ndarray, k: int) -> list[int]:
    """Positions of the k best positive scores, best first; ties in position (row) order."""
    live = np.flatnonzero(scores > 0)
    if len(live) > k:
        chosen = scores[live]
        kth = float(np.partition(chosen, len(chosen) - k)[len(chosen) - k])
        above = live[chosen > kth]
        live = np.concatenate([above, live[chosen == kth][:k - len(above)]])
    return sorted(live.tolist(), key=lambda i: (-scores[i], i))
