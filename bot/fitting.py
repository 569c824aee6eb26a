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
from bot.postings import IndexData, Postings, row_dtype
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
    n_fields = len(field_doc)
    to_field = _grouping(np.asarray(text_field), n_fields)
    to_doc = _grouping(np.asarray(field_doc), n_docs)
    field_counts = to_field @ counts
    del counts
    tfidf = TfidfTransformer(sublinear_tf=True, norm="l2").fit(to_doc @ field_counts)
    weights = np.asarray(field_weights, dtype=np.float32)

    fields = tfidf.transform(field_counts)
    docs = _csc(_normalize(to_doc @ sparse.diags(weights) @ fields))
    del fields
    presence = _csc(_presence(field_counts, weights, np.asarray(field_doc), n_docs))
    del field_counts
    phrase_counts = terms.counts_of(np.asarray(phrase_texts, dtype=np.int64))
    phrases = _csc(tfidf.transform(phrase_counts) if phrase_texts else sparse.csr_matrix((0, terms.columns)))
    if not (np.array_equal(docs.indptr, presence.indptr) and np.array_equal(docs.indices, presence.indices)):
        raise AssertionError("an entry's vector and its field presence must hold the same terms")
    levels, _, codes, _ = _unique(presence.data)
    row = row_dtype(n_docs)
    return IndexData(
        ids=tuple(d.id for d in documents),
        kinds=tuple(d.kind for d in documents),
        unigrams=terms.unigrams,
        unigram_columns=terms.unigram_columns,
        bigram_keys=terms.bigram_keys,
        bigram_columns=terms.bigram_columns,
        idf=tfidf.idf_.astype(np.float32),
        entries=_postings(docs, row),
        presence=codes.astype(np.uint8).ravel(),
        presence_levels=levels.astype(np.float32) if len(levels) else np.ones(1, dtype=np.float32),
        phrases=_postings(phrases, row_dtype(len(owners))),
        phrase_owner=np.asarray(owners, dtype=row),
        doc_max=_column_max(docs),
        phrase_max=_column_max(phrases),
        words=terms.words,
        word_counts=terms.word_counts,
    )


class _Terms:
    """The terms of every text, numbered: unigram stems by a dict, bigrams as pairs of unigram ids in
    numpy, so a large corpus never holds a string per bigram."""

    def __init__(self, texts: list[str], analyzer: Analyzer, text_doc: np.ndarray, n_docs: int, prune: bool):
        word: defaultdict[str, int] = defaultdict()
        word.default_factory = word.__len__  # a new token gets the next id: C-level lookups
        chunks = []
        for at in range(0, len(texts), CHUNK):
            tokens = analyzer.tokens(texts[at:at + CHUNK])
            chunks.append(np.fromiter(map(word.__getitem__, tokens), dtype=np.int64, count=len(tokens)))
        tokens = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        del chunks
        names = list(word)
        # Stems get ids in order of first use: the order their first words got theirs.
        unigram: dict[str, int] = {}
        stem_of = np.full(len(names), -1, dtype=np.int64)
        for i, name in enumerate(names):
            if name != SEPARATOR and not dropped(name):
                stem_of[i] = unigram.setdefault(stem(name), len(unigram))
        ends = tokens == word.get(SEPARATOR, -1)
        text_of = np.cumsum(ends) - ends
        kept = stem_of[tokens] >= 0
        surface, text_of_token = tokens[kept], text_of[kept]
        del tokens, ends, text_of, kept
        ids = stem_of[surface]
        self.unigrams = tuple(unigram)
        u = len(self.unigrams)
        length = np.bincount(text_of_token, minlength=len(texts)).astype(np.int64)
        # The words of each document (for typo correction): how many documents use each, most first.
        pairs = _unique(text_doc[text_of_token] * max(1, len(word)) + surface)[0]
        doc_counts = np.bincount(pairs % max(1, len(word)), minlength=len(word))
        ranked = np.argsort(-doc_counts, kind="stable")  # ties: first used first
        ranked = ranked[doc_counts[ranked] > 0]  # not stop words
        self.words = tuple(names[i] for i in ranked.tolist())
        self.word_counts = doc_counts[ranked].astype(np.int32)
        del pairs, surface, names

        # Where each term occurs in the stream of every text's unigrams and then its bigrams (the
        # order columns are numbered in), and in which text.
        start = np.cumsum(length) - length  # first token of each text
        base = np.cumsum(np.maximum(2 * length - 1, 0)) - np.maximum(2 * length - 1, 0)
        token_at = np.repeat(base - start, length) + np.arange(len(ids))
        follows = np.ones(len(ids), dtype=bool)
        follows[start[length > 0]] = False  # a text's first token starts no bigram with the one before
        second = np.flatnonzero(follows)
        keys = ids[second - 1] * u + ids[second]
        bigram_at = np.repeat(base + length - start - 1, length)[second] + second
        bigram_text = text_of_token[second]
        del follows
        found, first, inverse, seen = _unique(keys)
        kept = seen > 1 if prune else np.ones(len(found), dtype=bool)
        # Columns: every unigram and kept bigram, by first position in the stream.
        # Ids are given in order of first use, so a unigram's first use is where the running maximum grows.
        grows = np.flatnonzero(np.diff(np.maximum.accumulate(ids), prepend=-1) > 0) if len(ids) else ids
        unigram_first = token_at[grows]
        firsts = np.concatenate([unigram_first, bigram_at[first[kept]]])
        column = np.empty(len(firsts), dtype=np.int64)
        column[np.argsort(firsts, kind="stable")] = np.arange(len(firsts))
        self.columns = len(firsts)
        self.unigram_columns = column[:u].astype(np.int32)
        self.bigram_keys = found[kept]
        self.bigram_columns = column[u:].astype(np.int32)
        bigram_column = np.full(len(found), -1, dtype=np.int64)
        bigram_column[kept] = column[u:]
        occurrence_column = bigram_column[inverse.ravel()]
        keep = occurrence_column >= 0
        self._rows = np.concatenate([text_of_token, bigram_text[keep]])
        self._cols = np.concatenate([column[ids], occurrence_column[keep]])
        self._texts = len(texts)
        self.counts = self._matrix(self._rows, self._cols, len(texts))

    def _matrix(self, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> sparse.csr_matrix:
        m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_rows, self.columns))
        m.sum_duplicates()
        m.sort_indices()
        return m

    def counts_of(self, texts: np.ndarray) -> sparse.csr_matrix:
        """The term counts of some texts (rows in the given order)."""
        if not len(texts):
            return sparse.csr_matrix((0, self.columns), dtype=np.float32)
        where = np.full(self._texts, -1, dtype=np.int64)
        where[texts] = np.arange(len(texts))
        mine = where[self._rows]
        keep = mine >= 0
        return self._matrix(mine[keep], self._cols[keep], len(texts))


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """np.unique with first index, inverse and counts, by one stable sort (numpy's own hashes first, which is
    several times slower on large integer arrays)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if len(values) else order
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(np.concatenate(([False], ordered[1:] != ordered[:-1]))) if len(values) else order
    counts = np.diff(np.append(starts, len(values)))
    return ordered[starts], order[starts], inverse, counts


def _csc(m: sparse.spmatrix) -> sparse.csc_matrix:
    c = sparse.csc_matrix(m, dtype=np.float32)
    c.sort_indices()
    return c


def _postings(m: sparse.csc_matrix, rows: np.dtype) -> Postings:
    return Postings(m.indptr.astype(np.int64), m.indices.astype(rows), m.data.astype(np.float32))


def _column_max(m: sparse.csc_matrix) -> np.ndarray:
    """The largest value in each column (0 for an empty one)."""
    out = np.zeros(m.shape[1], dtype=np.float32)
    full = np.flatnonzero(np.diff(m.indptr))
    if len(full):
        out[full] = np.maximum.reduceat(m.data, m.indptr[full])
    return out


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
