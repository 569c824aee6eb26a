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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from scipy import sparse

from bot.analysis import Analyzer, is_english_word, stem

# The blend of the three scores; they sum to 1 so a perfect match scores 1.
DOC_WEIGHT, PHRASE_WEIGHT, COVER_WEIGHT = 0.25, 0.40, 0.35
COVERAGE_POWER = 1.5  # how hard unknown words pull the score down
ENGLISH_MIN_FREQUENCY = 100  # a word this common in English is a word, not a typo to correct


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


class Index:
    """An immutable TF-IDF index over documents. Build with `Index.build(documents, analyzer)`."""

    def __init__(self, analyzer: Analyzer, ids: list[str], vocabulary: dict[str, int],
                 idf: np.ndarray, docs: sparse.csr_matrix, phrases: sparse.csr_matrix,
                 phrase_owner: np.ndarray, presence: sparse.csr_matrix, known_words: dict[str, int],
                 kinds: list[str] | None = None):
        self.analyzer = analyzer
        self.ids = ids
        self._rows = {entry_id: row for row, entry_id in enumerate(ids)}
        self._kinds = kinds or [""] * len(ids)
        self.max_idf = float(idf.max()) if len(idf) else 1.0
        self.vocabulary = vocabulary  # term -> column
        self._idf = idf
        self._phrase_owner = phrase_owner  # phrasing row -> the entry row it belongs to
        # Kept column-major only: a query reads just its terms' columns. `presence` is entry x
        # term, the weight of the strongest field holding the term.
        self._docs, self._phrases, self._presence = _csc(docs), _csc(phrases), _csc(presence)
        self.known_words = known_words  # surface word -> how many documents use it
        # Correction candidates by (length, first letter) and (length, second letter): a typo
        # rarely changes both of a word's first two letters, and small buckets keep it fast.
        buckets: dict[tuple[int, int, str], list[str]] = defaultdict(list)
        for w in sorted(known_words, key=lambda w: -known_words[w]):
            if len(w) >= 2 and not w.isdigit():
                buckets[(len(w), 0, w[0])].append(w)
                buckets[(len(w), 1, w[1])].append(w)
        self._buckets = dict(buckets)

    @classmethod
    def build(cls, documents: Sequence[Document], analyzer: Analyzer) -> "Index":
        """Count terms of every text once, fit IDF on whole entries, then weight fields and phrasings."""
        from sklearn.feature_extraction.text import TfidfTransformer  # heavy: only when fitting

        # A missing term gets the next column number: C-level lookups, no Python per term.
        vocabulary: defaultdict[str, int] = defaultdict()
        vocabulary.default_factory = vocabulary.__len__
        words: dict[str, int] = defaultdict(int)
        columns: list[int] = []
        text_ends = [0]
        text_field: list[int] = []  # field row of each text
        field_doc: list[int] = []  # document row of each field
        field_weights: list[float] = []
        phrase_texts: list[int] = []
        owners: list[int] = []
        for row, d in enumerate(documents):
            seen: set[str] = set()
            for f in d.fields:
                field_doc.append(row)
                field_weights.append(f.weight)
                for text in f.texts:
                    w = analyzer.words(text)
                    seen.update(w)
                    columns += map(vocabulary.__getitem__, Analyzer.terms_of_words(w))
                    if f.phrasings:
                        phrase_texts.append(len(text_field))
                        owners.append(row)
                    text_field.append(len(field_doc) - 1)
                    text_ends.append(len(columns))
            for w in seen:
                words[w] += 1

        shape = (len(text_field), len(vocabulary))
        counts = sparse.csr_matrix(
            (np.ones(len(columns), dtype=np.float32), np.asarray(columns, dtype=np.int64), np.asarray(text_ends)),
            shape=shape,
        )
        counts.sum_duplicates()
        n_fields, n_docs = len(field_doc), len(documents)
        to_field = _grouping(np.asarray(text_field), n_fields)
        to_doc = _grouping(np.asarray(field_doc), n_docs)
        field_counts = to_field @ counts
        tfidf = TfidfTransformer(sublinear_tf=True, norm="l2").fit(to_doc @ field_counts)
        weights = np.asarray(field_weights, dtype=np.float32)

        fields = tfidf.transform(field_counts)
        docs = _normalize(to_doc @ sparse.diags(weights) @ fields)
        presence = _presence(field_counts, weights, np.asarray(field_doc), n_docs)
        phrases = tfidf.transform(counts[phrase_texts]) if phrase_texts else sparse.csr_matrix((0, shape[1]))

        return cls(
            analyzer,
            [d.id for d in documents],
            dict(vocabulary),
            tfidf.idf_.astype(np.float32),
            sparse.csr_matrix(docs, dtype=np.float32),
            sparse.csr_matrix(phrases, dtype=np.float32),
            np.asarray(owners, dtype=np.int64),
            presence,
            dict(words),
            [d.kind for d in documents],
        )

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
        indptr, indices, _ = self._presence
        start, end = indptr[column], indptr[column + 1]
        row = self._rows[entry_id]
        at = start + int(np.searchsorted(indices[start:end], row))
        return at < end and indices[at] == row

    def holds(self, entry_id: str, terms: Iterable[tuple[int, float]]) -> float:
        """The share of a question's weight (its `Results.terms`) the entry holds."""
        return sum(w for column, w in terms if self.has(entry_id, column))

    def columns(self, text: str) -> list[int]:
        """The term columns of a text (unknown terms left out): what a unit of an answer holds."""
        get = self.vocabulary.get
        return [c for c in map(get, self.analyzer.terms(text)) if c is not None]

    def vector(self, words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """The L2-normalised TF-IDF vector of already-read words, as (columns, values)."""
        counts: dict[int, int] = defaultdict(int)
        for term in Analyzer.terms_of_words(list(words)):
            col = self.vocabulary.get(term)
            if col is not None:
                counts[col] += 1
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        vals = (1.0 + np.log(tf)) * self._idf[cols]
        if len(vals):
            vals /= np.sqrt(float(vals @ vals))
        return cols, vals

    def search(self, text: str, k: int = 5) -> Results:
        """Score every entry against the question and return the top k."""
        words, corrections, unknown = self.read(text)
        coverage = (len(words) - len(unknown)) / len(words) if words else 0.0
        cols, q = self.vector(words)
        if not len(cols):
            return Results((), tuple(words), tuple(corrections), tuple(unknown), coverage)

        # A query has a handful of terms, so each product below reads only those terms' columns.
        n = len(self.ids)
        rows, vals = _columns(self._docs, cols, q)
        doc = np.bincount(rows, weights=vals, minlength=n)
        rows, vals = _columns(self._presence, cols, q * q)  # q is unit length: weights sum to 1
        cover = np.bincount(rows, weights=vals, minlength=n)
        rows, vals = _columns(self._phrases, cols, q)
        best = np.zeros(n)
        if len(rows):
            per_phrase = np.bincount(rows, weights=vals, minlength=len(self._phrase_owner))
            phrase_ids = np.flatnonzero(per_phrase)
            np.maximum.at(best, self._phrase_owner[phrase_ids], per_phrase[phrase_ids])
        scores = DOC_WEIGHT * doc + COVER_WEIGHT * cover + PHRASE_WEIGHT * best

        top = np.flatnonzero(scores)
        if len(top) > k:
            top = top[np.argpartition(-scores[top], k - 1)[:k]]
        top = sorted(top.tolist(), key=lambda row: (-scores[row], row))
        damp = coverage ** COVERAGE_POWER
        hits = tuple(Hit(self.ids[row], float(scores[row]) * damp, float(doc[row]), float(cover[row]), float(best[row]))
                     for row in top)
        terms = tuple(zip(cols.tolist(), (q * q).tolist()))
        return Results(hits, tuple(words), tuple(corrections), tuple(unknown), coverage, terms)


def _csc(m: sparse.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A matrix as column-major arrays (indptr, row indices, values)."""
    c = sparse.csc_matrix(m)
    c.sort_indices()
    return c.indptr, c.indices, c.data


def _columns(csc: tuple[np.ndarray, np.ndarray, np.ndarray], cols: np.ndarray, weights: np.ndarray):
    """Rows and weighted values of the given columns: the non-zeros of matrix @ query."""
    indptr, indices, data = csc
    spans = [(indptr[c], indptr[c + 1]) for c in cols.tolist()]
    rows = np.concatenate([indices[a:b] for a, b in spans])
    vals = np.concatenate([data[a:b] * w for (a, b), w in zip(spans, weights.tolist())])
    return rows, vals


def _presence(field_counts: sparse.csr_matrix, weights: np.ndarray, field_doc: np.ndarray, n_docs: int) -> sparse.csr_matrix:
    """Entry x term: the weight (scaled to at most 1) of the strongest field holding the term."""
    presence = sparse.csr_matrix((n_docs, field_counts.shape[1]), dtype=np.float32)
    top = float(weights.max()) or 1.0
    for weight in sorted(set(weights.tolist())):
        if weight <= 0:
            continue
        rows = np.flatnonzero(weights == weight)
        held = _grouping(field_doc[rows], n_docs) @ field_counts[rows]
        held.data[:] = weight / top
        presence = presence.maximum(held)
    return sparse.csr_matrix(presence, dtype=np.float32)


def _grouping(group_of: np.ndarray, n_groups: int) -> sparse.csr_matrix:
    """The 0/1 matrix that sums rows into their groups: (groups x rows)."""
    n = len(group_of)
    return sparse.csr_matrix((np.ones(n, dtype=np.float32), (group_of, np.arange(n))), shape=(n_groups, n))


def _normalize(m: sparse.spmatrix) -> sparse.csr_matrix:
    """Scale every row to unit length."""
    m = sparse.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ m, dtype=np.float32)
