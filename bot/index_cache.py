"""The built index on disk, one file per index version, so a start loads it instead of fitting.

A file's key is a digest of everything that shapes the index: the documents (each field's
texts, weight and role, so the knowledge files and the taught phrasings both), the alias table
and the analyzer's own settings, this file format's version, and the versions of the libraries
that fit the index and stem its words. A file is numpy arrays in an uncompressed .npz, strings
in a JSON member, read with allow_pickle=False: a cache folder that others can write cannot make
trendbot run code. A file that is damaged (the zip's CRC), truncated, foreign, of another format
or key, or whose arrays do not form an index (bot/postings.py `check`) is ignored, and the index
is fitted again and written over it. Writes go to a temporary file renamed into place, so a
reader sees a whole file or none. A folder that cannot be written costs only the warm start.

A warm start imports neither scikit-learn nor scipy: only bot/fitting.py does, on a miss.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot import analysis
from bot.analysis import Analyzer
from bot.postings import IndexData, Invalid, check
from bot.retrieval import Document, Index

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the arrays, their meaning or the way they are fitted changes
KEEP = 4  # index files kept in a folder, the most recently used: switching back to a version stays warm
# The libraries whose versions can change a fitted index: (module, distribution as its dist-info spells it).
LIBRARIES = (("sklearn", "scikit_learn"), ("scipy", "scipy"), ("snowballstemmer", "snowballstemmer"),
             ("Stemmer", "pystemmer"))


class IndexCache:
    """Indexes by version in a folder; `index` loads the one for the documents or fits and stores it."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self._warned = False
        self._lock = threading.Lock()

    def index(self, documents: Sequence[Document], analyzer: Analyzer) -> Index:
        """The index of the documents: from its file when there is a good one, else fitted (and stored)."""
        key = version(documents, analyzer)
        path = self.folder / f"index-{key}.npz"
        data = load(path, key)
        if data is None:
            from bot import fitting  # scikit-learn and scipy: only when fitting

            data = fitting.fit(documents, analyzer)
            self._store(path, key, data)
        else:
            _touch(path)
        return Index(analyzer, data)

    def _store(self, path: Path, key: str, data: IndexData) -> None:
        try:
            save(path, key, data)
        except OSError as exc:
            with self._lock:
                first, self._warned = not self._warned, True
            (log.info if first else log.debug)("cannot store the built index in %s (%s): each start fits it again",
                                                self.folder, exc.strerror or exc)
            return
        _prune(self.folder, KEEP)


def version(documents: Sequence[Document], analyzer: Analyzer) -> str:
    """The key of an index: a digest of its documents, aliases, analyzer settings, format and libraries."""
    h = hashlib.sha256()
    h.update(f"trendbot index format {FORMAT}\n{libraries()}\n".encode())
    h.update(json.dumps([analysis.settings(), sorted(analyzer.aliases.items())]).encode())
    for d in documents:
        h.update(f"\x1e{d.id}\x1f{d.kind}".encode())
        for f in d.fields:
            h.update(f"\x1d{f.weight!r}\x1f{int(f.phrasings)}".encode())
            for text in f.texts:
                h.update(b"\x1c" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def libraries() -> str:
    """The installed versions of the libraries that shape a fitted index, found without importing them."""
    import importlib.util

    found = [f"numpy {np.__version__}"]
    for module, dist in LIBRARIES:
        name = "unknown"
        try:
            spec = importlib.util.find_spec(module)
            where = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
            folder = os.path.dirname(where)
            name = next((n for n in os.listdir(folder) if n.startswith(f"{dist}-") and n.endswith(".dist-info")), name)
        except (ImportError, ValueError, AttributeError, TypeError, IndexError, OSError):
            pass
        found.append(f"{module} {name.removeprefix(f'{dist}-').removesuffix('.dist-info')}")
    return ", ".join(found)


def save(path: Path, key: str, data: IndexData) -> None:
    """Write the index to `path` atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": FORMAT, "key": key, "strings": data.strings()}, ensure_ascii=False).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as out:
            np.savez(out, meta=np.frombuffer(meta, dtype=np.uint8), **data.arrays())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path, key: str) -> IndexData | None:
    """The index stored at `path` under `key`, or None when there is none or it cannot be trusted."""
    try:
        stored = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        log.info("ignoring the cached index %s: %s", path, exc)
        return None
    try:
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise Invalid("not an index file")
        # Stored members only: nothing in the file can expand beyond its own size.
        if any(i.compress_type != zipfile.ZIP_STORED for i in stored.zip.infolist()):
            raise Invalid("compressed members")
        meta = json.loads(bytes(stored["meta"]).decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
            raise Invalid("another format or version")
        strings = meta.get("strings")
        if not isinstance(strings, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                                                    for v in strings.values()):
            raise Invalid("strings")
        data = IndexData.from_parts({name: stored[name] for name in stored.files if name != "meta"}, strings)
        check(data)
        return data
    except (Invalid, OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        log.info("ignoring the cached index %s: %s", path, exc)
        return None
    finally:
        if isinstance(stored, np.lib.npyio.NpzFile):
            stored.close()


def _touch(path: Path) -> None:
    try:
        os.utime(path)  # recently used: kept by _prune
    except OSError:
        pass


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the `keep` most recently used index files (and temporary files a crash left)."""
    try:
        found = [(p.stat().st_mtime, p) for p in folder.glob("index-*.npz")]
        found.sort(reverse=True)
        for _, p in found[keep:]:
            p.unlink(missing_ok=True)
        stale = time.time() - 3600
        for p in folder.glob(".index-*.tmp"):  # left by a process that died while writing
            if p.stat().st_mtime < stale:
                p.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("could not tidy the index cache in %s: %s", folder, exc)
