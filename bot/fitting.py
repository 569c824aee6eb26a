"""Fitting the index: documents -> TF-IDF arrays, with scikit-learn. Imported only on a cold build.

Terms of every text are counted once; IDF is fitted (scikit-learn's TfidfTransformer, smoothed,
sublinear TF) on whole entries; then each entry gets the unit-length weighted sum of its fields,
each phrasing its own unit vector, and each (entry, term) the weight of the strongest field that
holds the term. The result is plain arrays (bot/postings.py) that the cache can store.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer

from bot.analysis import SEPARATOR, Analyzer, dropped, stem
from bot.postings import IndexData, Postings, column_max, row_dtype
from bot.retrieval import Document, Index


def build(documents: Sequence[Document], analyzer: Analyzer) -> Index:
    """Fit an index over the documents."""
    return Index(analyzer, fit(documents, analyzer))


CHUNK = 20_000  # texts analysed in one pass of the patterns
PRUNE_FROM = 20_000  # entries from which bigrams seen only once are left out (see `fit`)


def fit(documents: Sequence[Document], analyzer: Analyzer) -> IndexData:
    """Count terms of every text once, fit IDF on whole entries, then weight fields and phrasings.

    Term columns are numbered in order of first use (a text's unigrams, then its bigrams), so
    a row's terms are summed in the same order whatever the corpus. From PRUNE_FROM entries on,
    a bigram seen once in the whole corpus is left out: at that size they are most of the
    vocabulary (92 times the unigrams at 100,000 entries) and each matches one text. Below it
    they stay: on the shipped knowledge, dropping them changes answers.
    """
    texts: list[str] = []
    text_field: list[int] = []  # field row of each text
    field_doc: list[int] = []  # document row of each field
    field_weights: list[float] = []
    phrase_texts: list[int] = []
    owners: list[int] = []
    for row, d in enumerate(documents):
        for f in d.fields:
            field_doc.append(row)
            field_weights.append(f.weight)
            for text in f.texts:
                if f.phrasings:
                    phrase_texts.append(len(texts))
                    owners.append(row)
                texts.append(text)
                text_field.append(len(field_doc) - 1)
    n_docs = len(documents)
    terms = _Terms(texts, analyzer, np.asarray(field_doc, dtype=np.int64)[np.asarray(text_field, dtype=np.int64)],
                   n_docs, prune=n_docs >= PRUNE_FROM)
    counts = terms.counts
    phrase_counts = counts[np.asarray(phrase_texts, dtype=np.int64)]
    n_fields = len(field_doc)
    to_field = _grouping(np.asarray(text_field), n_fields)
    to_doc = _grouping(np.asarray(field_doc), n_docs)
    field_counts = to_field @ counts
    del counts, terms.counts
    tfidf = TfidfTransformer(sublinear_tf=True, norm="l2").fit(to_doc @ field_counts)
    weights = np.asarray(field_weights, dtype=np.float32)

    fields = tfidf.transform(field_counts)
    docs = _csc(_normalize(to_doc @ sparse.diags(weights) @ fields))
    del fields
    presence = _csc(_presence(field_counts, weights, np.asarray(field_doc), n_docs))
    del field_counts
    phrases = _csc(tfidf.transform(phrase_counts) if phrase_texts else sparse.csr_matrix((0, terms.columns)))
    if not (np.array_equal(docs.indptr, presence.indptr) and np.array_equal(docs.indices, presence.indices)):
        raise AssertionError("an entry's vector and its field presence must hold the same terms")
    levels = _distinct(presence.data)
    codes = _codes(presence.data, levels)
    entries, phrase_postings = _postings(docs, row_dtype(n_docs)), _postings(phrases, row_dtype(len(owners)))
    row = row_dtype(n_docs)
    return IndexData(
        ids=tuple(d.id for d in documents),
        kinds=tuple(d.kind for d in documents),
        unigrams=terms.unigrams,
        unigram_columns=terms.unigram_columns,
        bigram_keys=terms.bigram_keys,
        bigram_columns=terms.bigram_columns,
        idf=tfidf.idf_.astype(np.float32),
        entries=entries,
        presence=codes,
        presence_levels=levels.astype(np.float32) if len(levels) else np.ones(1, dtype=np.float32),
        phrases=phrase_postings,
        phrase_owner=np.asarray(owners, dtype=row),
        doc_max=column_max(entries),
        phrase_max=column_max(phrase_postings),
        words=terms.words,
        word_counts=terms.word_counts,
    )


class _Terms:
    """The terms of every text, numbered: unigram stems by a dict, bigrams as pairs of unigram ids in
    numpy, so a large corpus never holds a string per bigram. Texts are read in chunks that end
    where a document does, so the tokens of the whole corpus are never strings at once."""

    def __init__(self, texts: list[str], analyzer: Analyzer, text_doc: np.ndarray, n_docs: int, prune: bool):
        word: defaultdict[str, int] = defaultdict()
        word.default_factory = word.__len__  # a new token gets the next id: C-level lookups
        unigram: dict[str, int] = {}
        stem_of: list[int] = []  # per word id: its stem's id, -1 for stop words and the separator
        doc_counts = np.zeros(0, dtype=np.int64)  # per word id: how many documents use it
        id_parts, text_parts = [], []
        at = 0
        while at < len(texts):
            end = min(len(texts), at + CHUNK)
            while end < len(texts) and text_doc[end] == text_doc[end - 1]:
                end += 1  # a document's texts stay in one chunk
            tokens = analyzer.tokens(texts[at:end])
            words = np.fromiter(map(word.__getitem__, tokens), dtype=np.int32, count=len(tokens))
            del tokens
            # Stems get ids in order of first use: the order their first words got theirs.
            for name in list(word)[len(stem_of):]:
                stem_of.append(-1 if name == SEPARATOR or dropped(name) else unigram.setdefault(stem(name), len(unigram)))
            stems = np.asarray(stem_of, dtype=np.int32)[words]
            ends = words == word[SEPARATOR]
            text = (np.cumsum(ends, dtype=np.int32) - ends + at)
            kept = stems >= 0
            id_parts.append(stems[kept])
            text_parts.append(text[kept])
            # The words of each document (for typo correction): distinct (document, word) pairs.
            pairs = _distinct(text_doc[text[kept]].astype(np.int64) << 31 | words[kept])
            doc_counts = np.concatenate([doc_counts, np.zeros(len(stem_of) - len(doc_counts), dtype=np.int64)])
            doc_counts += np.bincount((pairs & (2**31 - 1)).astype(np.int64), minlength=len(stem_of))
            del words, stems, ends, text, kept, pairs
            at = end
        names = list(word)
        ranked = np.argsort(-doc_counts, kind="stable")  # ties: first used first
        ranked = ranked[doc_counts[ranked] > 0]  # not stop words
        self.words = tuple(names[i] for i in ranked.tolist())
        self.word_counts = doc_counts[ranked].astype(np.int32)
        del names, ranked
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
        text_of = np.concatenate(text_parts) if text_parts else np.zeros(0, dtype=np.int32)
        del id_parts, text_parts
        self.unigrams = tuple(unigram)
        u = len(self.unigrams)
        length = np.bincount(text_of, minlength=len(texts)).astype(np.int64)

        # Columns are numbered by first use in the stream of every text's unigrams, then its bigrams.
        start = np.cumsum(length) - length  # first token of each text
        base = np.cumsum(np.maximum(2 * length - 1, 0)) - np.maximum(2 * length - 1, 0)
        # Ids are given in order of first use, so a unigram's first use is where the running maximum grows.
        grows = np.flatnonzero(np.diff(np.maximum.accumulate(ids), prepend=-1) > 0) if len(ids) else ids
        unigram_first = base[text_of[grows]] - start[text_of[grows]] + grows
        # Bigram p joins tokens p and p + 1 of one text.
        same = text_of[1:] == text_of[:-1]
        keys = (ids[:-1].astype(np.int64) * u + ids[1:])[same]
        found, first, inverse, seen = _unique(keys)
        del keys
        at = np.flatnonzero(same)[first]
        bigram_first = base[text_of[at]] + length[text_of[at]] + at - start[text_of[at]]
        kept = seen > 1 if prune else np.ones(len(found), dtype=bool)
        firsts = np.concatenate([unigram_first, bigram_first[kept]])
        column = np.empty(len(firsts), dtype=np.int32)
        column[np.argsort(firsts, kind="stable")] = np.arange(len(firsts), dtype=np.int32)
        self.columns = len(firsts)
        self.unigram_columns = column[:u]
        self.bigram_keys = found[kept]
        self.bigram_columns = column[u:]
        bigram_column = np.full(len(found), -1, dtype=np.int32)
        bigram_column[kept] = column[u:]
        del found, first, seen, kept
        occurrence = bigram_column[inverse]
        del inverse, bigram_column
        keep = occurrence >= 0
        rows = np.concatenate([text_of, text_of[:-1][same][keep]])
        cols = np.concatenate([column[ids], occurrence[keep]])
        del same, occurrence, keep, ids, text_of
        self.counts = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                        shape=(len(texts), self.columns))
        del rows, cols
        self.counts.sum_duplicates()
        self.counts.sort_indices()


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """np.unique with first index, inverse and counts, by one stable sort (numpy's own hashes first, which is
    several times slower on large integer arrays)."""
    order = _stable_order(values)
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if len(values) else order
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(np.concatenate(([False], ordered[1:] != ordered[:-1]))) if len(values) else order
    counts = np.diff(np.append(starts, len(values)))
    return ordered[starts], order[starts], inverse, counts


def _stable_order(values: np.ndarray) -> np.ndarray:
    """What np.argsort(values, kind="stable") gives. Non-negative integers whose largest value leaves room
    for a position in the low bits of an int64 are sorted by value, position packed in: a plain sort of
    one array is several times faster than an indirect one."""
    n = len(values)
    if n and values.dtype.kind in "iu":
        bits = max(1, (n - 1).bit_length())
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high < 1 << (63 - bits):
            packed = values.astype(np.int64) << bits
            packed |= np.arange(n, dtype=np.int64)
            packed.sort()
            return packed & ((1 << bits) - 1)
    return np.argsort(values, kind="stable")


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (np.unique's first result, by a sort of the values alone)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


def _codes(values: np.ndarray, levels: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Where each value is among the few distinct `levels` (ascending), as uint8, a chunk at a time
    so no int64 array of the values' length is ever made."""
    if len(levels) > 256:
        raise ValueError(f"{len(levels)} presence levels: at most 256 fit a uint8 code")
    out = np.empty(len(values), dtype=np.uint8)
    for at in range(0, len(values), chunk):
        out[at:at + chunk] = np.searchsorted(levels, values[at:at + chunk])
    return out


def _csc(m: sparse.spmatrix) -> sparse.csc_matrix:
    c = sparse.csc_matrix(m, dtype=np.float32)
    c.sort_indices()
    return c


def _postings(m: sparse.csc_matrix, rows: np.dtype) -> Postings:
    return Postings(m.indptr.astype(np.int64), m.indices.astype(rows), m.data.astype(np.float32))


def _presence(field_counts: sparse.csr_matrix, weights: np.ndarray, field_doc: np.ndarray, n_docs: int) -> sparse.csr_matrix:
    """Entry x term: the weight (scaled to at most 1) of the strongest field holding the term."""
    presence = sparse.csr_matrix((n_docs, field_counts.shape[1]), dtype=np.float32)
    top = float(weights.max()) if len(weights) else 1.0
    top = top or 1.0
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
