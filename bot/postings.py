"""The built index as plain arrays: what fitting makes, the cache stores and the queries read.

Everything is a numpy array of a fixed dtype or a tuple of strings, so it can be written as
`.npy` members and JSON and read back without running any code (no pickle). `check` is what
makes a loaded copy trustworthy: shapes, dtypes, bounds and order, before any query reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Postings:
    """Column-major postings: term column c holds rows[indptr[c]:indptr[c + 1]] (ascending) and their values."""

    indptr: np.ndarray  # int64, one more than the columns
    rows: np.ndarray  # uint16 where the rows fit, else int32
    values: np.ndarray  # float32

    def span(self, column: int) -> tuple[int, int]:
        """Where a column's postings start and end."""
        return int(self.indptr[column]), int(self.indptr[column + 1])


@dataclass(frozen=True)
class IndexData:
    """Everything a query needs, as arrays and strings.

    Entries are rows 0..n-1 in `ids` order; phrasings (the question, an alternate, a title, an
    alias) are rows of their own, grouped by entry (`phrase_owner` ascending). Term columns
    number unigram and bigram stems together; a bigram "a b" is found by the key
    `id(a) * len(unigrams) + id(b)` in `bigram_keys` (ascending), ids being positions in `unigrams`.
    """

    ids: tuple[str, ...]
    kinds: tuple[str, ...]
    unigrams: tuple[str, ...]  # unigram stems, by id
    unigram_columns: np.ndarray  # int32, the column of each unigram id
    bigram_keys: np.ndarray  # int64, ascending
    bigram_columns: np.ndarray  # int32
    idf: np.ndarray  # float32, per column
    entries: Postings  # entry x term: the entry's weighted, unit-length TF-IDF vector
    presence: np.ndarray  # uint8 per entry posting: which `presence_levels` the strongest field holding the term has
    presence_levels: np.ndarray  # float32, ascending, at most 1
    phrases: Postings  # phrasing x term: each phrasing's unit-length TF-IDF vector
    phrase_owner: np.ndarray  # the entry row of each phrasing, ascending (entries' dtype)
    doc_max: np.ndarray  # float32 per column: the largest entry value (a bound for skipping)
    phrase_max: np.ndarray  # float32 per column: the largest phrasing value
    words: tuple[str, ...]  # surface words of the documents, most used first
    word_counts: np.ndarray  # int32: how many documents use each word

    @property
    def columns(self) -> int:
        """How many term columns there are."""
        return len(self.idf)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric parts by name (postings as name.indptr, name.rows, name.values)."""
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Postings):
                out.update({f"{f.name}.{p.name}": getattr(value, p.name) for p in fields(value)})
            elif isinstance(value, np.ndarray):
                out[f.name] = value
        return out

    def strings(self) -> dict[str, tuple[str, ...]]:
        """The string parts by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), tuple)}

    @classmethod
    def from_parts(cls, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> "IndexData":
        """The inverse of `arrays` and `strings`; KeyError or TypeError when a part is missing or
        is not of its kind (strings where numbers belong, or the other way round)."""
        expected = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        if set(strings) != expected:
            raise TypeError(f"string parts {sorted(strings)}, not {sorted(expected)}")
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            if f.name in strings:
                kwargs[f.name] = tuple(strings[f.name])
            elif f.name in ("entries", "phrases"):
                kwargs[f.name] = Postings(*(arrays[f"{f.name}.{p}"] for p in ("indptr", "rows", "values")))
            else:
                kwargs[f.name] = arrays[f.name]
        return cls(**kwargs)

    def memory(self) -> int:
        """Bytes held by the arrays (the strings not counted)."""
        return sum(a.nbytes for a in self.arrays().values())


def row_dtype(count: int) -> np.dtype:
    """The smallest dtype that numbers `count` rows."""
    return np.dtype(np.uint16) if count <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


class Invalid(ValueError):
    """The arrays do not form an index (a damaged or foreign file)."""


def check(data: IndexData) -> None:
    """Raise Invalid unless every array has its dtype and shape and every index points inside its target."""
    n, v, u = len(data.ids), data.columns, len(data.unigrams)
    row = row_dtype(n)
    _need(len(data.kinds) == n, "one kind per entry")
    _need(len(set(data.ids)) == n, "entry ids are unique")
    _array(data.unigram_columns, np.int32, (u,), "unigram_columns")
    _array(data.bigram_keys, np.int64, (len(data.bigram_columns),), "bigram_keys")
    _array(data.bigram_columns, np.int32, (len(data.bigram_keys),), "bigram_columns")
    _array(data.idf, np.float32, (v,), "idf")
    _array(data.doc_max, np.float32, (v,), "doc_max")
    _array(data.phrase_max, np.float32, (v,), "phrase_max")
    _array(data.word_counts, np.int32, (len(data.words),), "word_counts")
    _need(u + len(data.bigram_keys) == v, "every column is one unigram or one bigram")
    used = np.concatenate([data.unigram_columns, data.bigram_columns]).astype(np.int64)
    _need(np.array_equal(np.sort(used), np.arange(v)), "unigram and bigram columns number 0..columns-1 once each")
    _need(len(set(data.unigrams)) == u, "unigrams are unique")
    keys = data.bigram_keys
    _need(not len(keys) or (keys[0] >= 0 and keys[-1] < u * u), "bigram keys are pairs of unigram ids")
    _need(bool(np.all(keys[1:] > keys[:-1])), "bigram keys ascend")
    for name in ("idf", "doc_max", "phrase_max"):
        _need(bool(np.isfinite(getattr(data, name)).all()), f"{name} is finite")
    _need(bool(np.all(data.idf > 0)), "idf is positive")
    _postings(data.entries, v, n, row, "entries")
    _array(data.presence, np.uint8, (len(data.entries.rows),), "presence")
    levels = data.presence_levels
    _need(levels.dtype == np.float32 and levels.ndim == 1 and 0 < len(levels) <= 256, "presence_levels")
    _need(bool(np.all((levels > 0) & (levels <= 1)) and np.all(levels[1:] > levels[:-1])), "presence_levels ascend in (0, 1]")
    _need(not len(data.presence) or int(data.presence.max()) < len(levels), "presence codes name a level")
    # The bounds a search skips postings by must be the columns' true maxima, or it could skip an answer.
    _need(np.array_equal(column_max(data.entries), data.doc_max), "doc_max is each column's largest value")
    phrase_count = len(data.phrase_owner)
    _postings(data.phrases, v, phrase_count, row_dtype(phrase_count), "phrases")
    owner = data.phrase_owner
    _array(owner, row, (phrase_count,), "phrase_owner")
    _need(not phrase_count or (int(owner[-1]) < n and bool(np.all(owner[1:] >= owner[:-1]))), "phrase owners ascend below n")
    _need(np.array_equal(column_max(data.phrases), data.phrase_max), "phrase_max is each column's largest value")


def column_max(p: Postings) -> np.ndarray:
    """The largest value in each column (0 for an empty one)."""
    out = np.zeros(len(p.indptr) - 1, dtype=np.float32)
    full = np.flatnonzero(np.diff(p.indptr))
    if len(full):
        out[full] = np.maximum.reduceat(p.values, p.indptr[full])
    return out


def _postings(p: Postings, columns: int, rows: int, dtype: np.dtype, name: str) -> None:
    _array(p.indptr, np.int64, (columns + 1,), f"{name}.indptr")
    _array(p.rows, dtype, (len(p.values),), f"{name}.rows")
    _array(p.values, np.float32, (len(p.rows),), f"{name}.values")
    ptr = p.indptr
    _need(ptr[0] == 0 and ptr[-1] == len(p.rows) and bool(np.all(ptr[1:] >= ptr[:-1])), f"{name}.indptr runs 0..nnz")
    if len(p.rows):
        _need(int(p.rows.max()) < rows, f"{name}.rows point at rows that exist")
        # Ascending within each column: a step down may only happen where a new column starts.
        down = np.flatnonzero(p.rows[1:] <= p.rows[:-1]) + 1
        starts = ptr[1:-1][ptr[1:-1] < len(p.rows)]
        _need(bool(np.isin(down, starts).all()), f"{name}.rows ascend within each column")
        _need(bool(np.isfinite(p.values).all() and np.all(p.values > 0)), f"{name}.values are positive")


def _array(a: object, dtype: type, shape: tuple[int, ...], name: str) -> None:
    _need(isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype) and a.shape == shape, f"{name} has dtype {np.dtype(dtype)} "
          f"and shape {shape}")


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise Invalid(what)
