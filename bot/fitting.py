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

from bot.analysis import Analyzer
from bot.postings import IndexData, Postings, row_dtype
from bot.retrieval import Document, Index


def build(documents: Sequence[Document], analyzer: Analyzer) -> Index:
    """Fit an index over the documents."""
    return Index(analyzer, fit(documents, analyzer))


def fit(documents: Sequence[Document], analyzer: Analyzer) -> IndexData:
    """Count terms of every text once, fit IDF on whole entries, then weight fields and phrasings."""
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
    docs = _csc(_normalize(to_doc @ sparse.diags(weights) @ fields))
    presence = _csc(_presence(field_counts, weights, np.asarray(field_doc), n_docs))
    phrases = _csc(tfidf.transform(counts[phrase_texts]) if phrase_texts else sparse.csr_matrix((0, shape[1])))
    if not (np.array_equal(docs.indptr, presence.indptr) and np.array_equal(docs.indices, presence.indices)):
        raise AssertionError("an entry's vector and its field presence must hold the same terms")

    terms = list(vocabulary)  # by column
    unigram_columns = [c for c, t in enumerate(terms) if " " not in t]
    unigrams = [terms[c] for c in unigram_columns]
    unigram_id = {t: i for i, t in enumerate(unigrams)}
    bigram_columns = np.asarray([c for c, t in enumerate(terms) if " " in t], dtype=np.int32)
    keys = np.asarray([_key(terms[c], unigram_id) for c in bigram_columns.tolist()], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    levels, codes = np.unique(presence.data, return_inverse=True)
    row = row_dtype(n_docs)
    ranked = sorted(words, key=lambda w: -words[w])  # most used first; ties keep first use
    return IndexData(
        ids=tuple(d.id for d in documents),
        kinds=tuple(d.kind for d in documents),
        unigrams=tuple(unigrams),
        unigram_columns=np.asarray(unigram_columns, dtype=np.int32),
        bigram_keys=keys[order],
        bigram_columns=bigram_columns[order],
        idf=tfidf.idf_.astype(np.float32),
        entries=_postings(docs, row),
        presence=codes.astype(np.uint8).ravel(),
        presence_levels=levels.astype(np.float32) if len(levels) else np.ones(1, dtype=np.float32),
        phrases=_postings(phrases, row_dtype(len(owners))),
        phrase_owner=np.asarray(owners, dtype=row),
        doc_max=_column_max(docs),
        phrase_max=_column_max(phrases),
        words=tuple(ranked),
        word_counts=np.asarray([words[w] for w in ranked], dtype=np.int32),
    )


def _key(bigram: str, unigram_id: dict[str, int]) -> int:
    first, second = bigram.split(" ")
    return unigram_id[first] * len(unigram_id) + unigram_id[second]


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
