"""Load and validate the YAML knowledge base into immutable objects."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_BYTES = 4 * 1024 * 1024  # a knowledge file larger than this is refused (the shipped ones are ~100 KB)
MAX_EXPANDED = 200_000  # values a file may hold once its YAML aliases are expanded
SECTIONS = ("sources", "aliases", "trends", "faqs", "tips")
MIN_ALTERNATES = 3
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass(frozen=True)
class Source:
    """An article the knowledge comes from."""

    id: str
    name: str  # how answers refer to it: "Nucamp"
    title: str
    publisher: str
    url: str
    date: str  # "YYYY-MM-DD", or "YYYY" for an undated article

    @property
    def when(self) -> str:
        """The date as people read it: "Feb 2025", or "2025" when only the year is known."""
        return when(self.date)


@dataclass(frozen=True)
class Trend:
    """A trend card: what `/trend <topic>` shows."""

    id: str
    title: str
    aliases: tuple[str, ...]
    summary: str
    points: tuple[str, ...]
    tools: tuple[str, ...]
    related: tuple[str, ...]
    sources: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class Faq:
    """A question people ask, with its answer."""

    id: str
    question: str
    alternates: tuple[str, ...]
    answer: str
    trend: str
    sources: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class Tip:
    """One actionable tip, posted as the daily tip."""

    id: str
    text: str
    trend: str
    source: str
    file: str


@dataclass(frozen=True)
class Knowledge:
    """The whole validated knowledge base."""

    sources: dict[str, Source]
    trends: dict[str, Trend]
    faqs: dict[str, Faq]
    tips: dict[str, Tip]
    aliases: dict[str, str]
    digest: str  # content hash, changes whenever any file does
    warnings: tuple[str, ...] = ()  # what is odd but not wrong (an empty file)

    def counts(self) -> dict[str, int]:
        """Number of entries of each kind."""
        return {
            "sources": len(self.sources),
            "trends": len(self.trends),
            "faqs": len(self.faqs),
            "tips": len(self.tips),
            "aliases": len(self.aliases),
        }

    def as_of(self, source_ids: tuple[str, ...]) -> str:
        """The date the knowledge behind these sources is current as of (the newest)."""
        dates = [self.sources[s].date for s in source_ids if s in self.sources]
        return when(max(dates)) if dates else ""


def when(date: str) -> str:
    """"2025-02-08" -> "Feb 2025"; a bare year stays as it is."""
    if len(date) == 10:
        return f"{MONTHS[int(date[5:7]) - 1]} {date[:4]}"
    return date


class KnowledgeError(Exception):
    """The knowledge base is invalid; `problems` lists every error found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def default_path() -> Path:
    """The knowledge folder shipped with the package (or the repository's, from source)."""
    here = Path(__file__).resolve().parent
    shipped = here / "_knowledge"
    return shipped if shipped.is_dir() else here.parent / "knowledge"


def load(path: Path | str | None = None, max_bytes: int = MAX_BYTES) -> Knowledge:
    """Read and validate every YAML file under `path`; raise KnowledgeError listing all problems.

    A file over `max_bytes`, one that vanishes while it is read, and an alias bomb are problems
    like any other, named with their file; an empty file is only a warning (`Knowledge.warnings`).
    """
    root = Path(path) if path is not None else default_path()
    if not root.is_dir():
        raise KnowledgeError([f"{root}: knowledge folder not found"])
    files = sorted(p for p in root.rglob("*.yaml") if p.is_file())
    if not files:
        raise KnowledgeError([f"{root}: no .yaml files"])
    checker = _Checker(root)
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(root).as_posix()
        try:
            size = file.stat().st_size
            if size > max_bytes:
                checker.problem(name, None, None, f"is {size:,} bytes; a knowledge file may hold at most {max_bytes:,}")
                continue
            raw = file.read_bytes()
        except OSError as exc:  # moved or deleted while it was being read (an editor saving, a deploy)
            checker.problem(name, None, None, f"could not be read ({exc.strerror or type(exc).__name__}); "
                                              "it may have been moved or deleted while it was read")
            continue
        digest.update(name.encode() + b"\0" + raw + b"\0")
        checker.read_file(file, raw)
    knowledge = checker.finish(digest.hexdigest()[:16])
    for warning in knowledge.warnings:
        log.warning("%s", warning)
    log.info("knowledge loaded: %s", knowledge.counts())
    return knowledge


class _Checker:
    """Collects entries from files and every problem with them."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []
        self.raw: dict[str, list[tuple[str, dict]]] = {s: [] for s in SECTIONS if s != "aliases"}
        self.aliases: dict[str, str] = {}
        self.alias_file: dict[str, str] = {}
        self.warnings: list[str] = []

    def problem(self, file: str, entry: str | None, field: str | None, message: str) -> None:
        where = file
        if entry:
            where += f": entry '{entry}'"
        if field:
            where += f": field '{field}'"
        self.problems.append(f"{where}: {message}")

    def read_file(self, path: Path, raw: bytes) -> None:
        name = path.relative_to(self.root).as_posix()
        try:
            text = raw.decode("utf-8")
            data, duplicates = _safe_load(text)
            for line, key in duplicates:
                self.problem(name, None, key, f"duplicate key (line {line})")
        except UnicodeDecodeError:
            self.problem(name, None, None, "not UTF-8 text")
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.problem(name, None, None, f"not valid YAML{where}: {reason}")
            return
        if data is None:
            self.warnings.append(f"{name}: the file is empty, so it adds nothing")
            return
        if not isinstance(data, dict):
            self.problem(name, None, None, "top level must be a mapping of sections")
            return
        for section, body in data.items():
            if section not in SECTIONS:
                self.problem(name, None, str(section), f"unknown section (expected one of {', '.join(SECTIONS)})")
            elif section == "aliases":
                self._read_aliases(name, body)
            elif not isinstance(body, list):
                self.problem(name, None, section, "must be a list of entries")
            else:
                for item in body:
                    if not isinstance(item, dict):
                        self.problem(name, None, section, f"entry must be a mapping, got {_kind(item)}")
                    else:
                        self.raw[section].append((name, item))

    def _read_aliases(self, name: str, body: object) -> None:
        if not isinstance(body, dict):
            self.problem(name, None, "aliases", "must be a mapping of jargon to canonical term")
            return
        for key, value in body.items():
            if not isinstance(key, str) or not key.strip():
                self.problem(name, str(key), "aliases", f"alias must be a non-empty string, got {_kind(key)}{_hint(key)}")
                continue
            if not isinstance(value, str) or not value.strip():
                self.problem(name, key, "aliases", f"canonical term must be a non-empty string, got {_kind(value)}{_hint(value)}")
                continue
            k, v = key.strip().lower(), value.strip().lower()
            if k in self.aliases and self.aliases[k] != v:
                self.problem(name, k, "aliases", f"alias already maps to '{self.aliases[k]}' in {self.alias_file[k]}")
                continue
            self.aliases[k] = v
            self.alias_file[k] = name

    def finish(self, digest: str) -> Knowledge:
        """Every entry read and checked, references resolved, source ids written out as names."""
        seen: dict[str, str] = {}  # id -> file, across all kinds
        sources = self._entries("sources", "source", seen, self._source)
        trends = self._entries("trends", "trend", seen, self._trend)
        faqs = self._entries("faqs", "faq", seen, self._faq)
        tips = self._entries("tips", "tip", seen, self._tip)
        self._check_references(sources, trends, faqs, tips)
        if not trends and not faqs:
            self.problems.append(f"{self.root}: no trends or faqs: nothing to answer from")
        if self.problems:
            raise KnowledgeError(self.problems)
        names = _SourceNames(sources)
        trends = {k: replace(t, summary=names(t.summary), points=tuple(map(names, t.points))) for k, t in trends.items()}
        faqs = {k: replace(q, answer=names(q.answer)) for k, q in faqs.items()}
        tips = {k: replace(t, text=names(t.text)) for k, t in tips.items()}
        return Knowledge(sources, trends, faqs, tips, dict(self.aliases), digest, tuple(self.warnings))

    def _entries(self, section: str, kind: str, seen: dict[str, str], read) -> dict:
        """One section's entries by id, each read by `read(fields, file)`; unknown fields are problems."""
        out = {}
        for file, item in self.raw[section]:
            f = _Fields(self, file, item, kind)
            entry = read(f, file, seen)
            f.done()
            out[entry.id] = entry
        return out

    def _source(self, f: _Fields, file: str, seen: dict[str, str]) -> Source:
        src = Source(id=f.id(seen), name=f.text("name"), title=f.text("title"), publisher=f.text("publisher"),
                     url=f.text("url", required=False), date=f.text("date"))
        if src.date and not re.fullmatch(r"\d{4}(-\d{2}-\d{2})?", src.date):
            self.problem(file, src.id, "date", "must be \"YYYY-MM-DD\" or \"YYYY\"")
        if src.url and not src.url.startswith(("https://", "http://")):
            self.problem(file, src.id, "url", "must start with https:// or http://")
        return src

    def _trend(self, f: _Fields, file: str, seen: dict[str, str]) -> Trend:
        return Trend(id=f.id(seen), title=f.text("title"), aliases=f.texts("aliases", required=False),
                     summary=f.text("summary"), points=f.texts("points"), tools=f.texts("tools", required=False),
                     related=f.texts("related", required=False), sources=f.texts("sources"), file=file)

    def _faq(self, f: _Fields, file: str, seen: dict[str, str]) -> Faq:
        q = Faq(id=f.id(seen), question=f.text("question"), alternates=f.texts("alternates"), answer=f.text("answer"),
                trend=f.text("trend"), sources=f.texts("sources"), file=file)
        if 0 < len(q.alternates) < MIN_ALTERNATES:
            self.problem(file, q.id, "alternates", f"needs at least {MIN_ALTERNATES} phrasings, has {len(q.alternates)}")
        return q

    def _tip(self, f: _Fields, file: str, seen: dict[str, str]) -> Tip:
        return Tip(id=f.id(seen), text=f.text("text"), trend=f.text("trend"), source=f.text("source"), file=file)

    def _check_references(self, sources: dict, trends: dict, faqs: dict, tips: dict) -> None:
        """Every id an entry names exists; no alias maps to itself."""
        for t in trends.values():
            self._refs(t.file, t.id, "related", t.related, trends, "trend")
            self._refs(t.file, t.id, "sources", t.sources, sources, "source")
        for q in faqs.values():
            self._refs(q.file, q.id, "trend", (q.trend,) if q.trend else (), trends, "trend")
            self._refs(q.file, q.id, "sources", q.sources, sources, "source")
        for tip in tips.values():
            self._refs(tip.file, tip.id, "trend", (tip.trend,) if tip.trend else (), trends, "trend")
            self._refs(tip.file, tip.id, "source", (tip.source,) if tip.source else (), sources, "source")
        for key, value in self.aliases.items():
            if key == value:
                self.problem(self.alias_file[key], key, "aliases", "maps to itself")

    def _refs(self, file: str, entry: str, field: str, ids: tuple[str, ...], known: dict, what: str) -> None:
        for ref in ids:
            if ref not in known:
                self.problem(file, entry, field, f"unknown {what} id '{ref}'")


class _SourceNames:
    """Replaces source ids written in knowledge text with the sources' names."""

    def __init__(self, sources: dict[str, Source]):
        self.names = {s.id: s.name for s in sources.values()}
        ids = sorted(self.names, key=len, reverse=True)
        self.pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ids)) + r")(?![\w-])", re.IGNORECASE) if ids else None

    def __call__(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(self._name, text)

    def _name(self, m: re.Match) -> str:
        name = self.names[m.group(1).lower()]
        before = m.string[: m.start()].rstrip(" *")
        if not before or before.endswith((".", "!", "?", "\n", "- ", "-")):
            return name[:1].upper() + name[1:]  # a sentence or bullet starts with it (not after a colon)
        return name


class _Fields:
    """Typed access to one entry's fields, recording problems instead of raising."""

    def __init__(self, checker: _Checker, file: str, item: dict, kind: str):
        self.checker, self.file, self.item, self.kind = checker, file, item, kind
        self.used = {"id"}
        raw_id = item.get("id")
        self.entry = raw_id if isinstance(raw_id, str) else None

    def _problem(self, field: str, message: str) -> None:
        self.checker.problem(self.file, self.entry or f"<{self.kind} without id>", field, message)

    def id(self, seen: dict[str, str]) -> str:
        value = self.item.get("id")
        if not isinstance(value, str) or not value:
            self._problem("id", f"missing or not a string{_hint(value)}")
            return ""
        if not ID_RE.match(value):
            self._problem("id", "must be a lowercase slug (a-z, 0-9, '-')")
        if value in seen:
            self._problem("id", f"duplicate id (first defined in {seen[value]})")
        seen.setdefault(value, self.file)
        return value

    def text(self, field: str, required: bool = True) -> str:
        self.used.add(field)
        value = self.item.get(field)
        if value is None:
            if required:
                self._problem(field, "missing" if field not in self.item else "empty")
            return ""
        if not isinstance(value, str):
            self._problem(field, f"must be text, got {_kind(value)}{_hint(value)}")
            return ""
        if not value.strip():
            if required:
                self._problem(field, "empty")
            return ""
        return value.strip()

    def texts(self, field: str, required: bool = True) -> tuple[str, ...]:
        self.used.add(field)
        value = self.item.get(field)
        if value is None:
            if required:
                self._problem(field, "missing" if field not in self.item else "empty")
            return ()
        if not isinstance(value, list):
            self._problem(field, f"must be a list, got {_kind(value)}{_hint(value)}")
            return ()
        out = []
        for i, v in enumerate(value):
            if not isinstance(v, str):
                self._problem(f"{field}[{i}]", f"must be text, got {_kind(v)}{_hint(v)}")
            elif not v.strip():
                self._problem(f"{field}[{i}]", "empty")
            else:
                out.append(v.strip())
        if required and not value:
            self._problem(field, "empty")
        return tuple(out)

    def done(self) -> None:
        for key in self.item:
            if key not in self.used:
                self._problem(str(key), f"unknown field for a {self.kind}")


# libyaml's safe loader when PyYAML has it (several times faster), else the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Bomb(yaml.YAMLError):
    """A document whose YAML aliases expand it past MAX_EXPANDED nodes, or refer to themselves."""


def _safe_load(text: str) -> tuple[object, list[tuple[int, str]]]:
    """yaml.safe_load, parsing once, plus the duplicate keys it would silently merge.

    YAML aliases (`*name`) share one node, so a few lines can stand for billions of values (an
    "alias bomb"). The document's expanded size is counted over the shared nodes first, each
    once, and a document past MAX_EXPANDED is refused before anything walks or builds it.
    """
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            size = _expanded_size(node)
            if size > MAX_EXPANDED:
                raise _Bomb(f"its YAML aliases expand it to more than {MAX_EXPANDED:,} values (an alias bomb?)")
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, list(_duplicate_keys(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document would be with every alias copied out (at most MAX_EXPANDED + 1),
    each shared node counted once; a node that contains itself is a _Bomb."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            open_.discard(key)
            sizes[key] = min(MAX_EXPANDED + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _Bomb("a YAML alias refers to the node that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _duplicate_keys(node: yaml.Node | None):
    """Yield (line, key) for every key that appears twice in one mapping (each shared node once)."""
    if node is None:
        return
    stack, seen_nodes = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            seen = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        yield k.start_mark.line + 1, k.value
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (dt.date, dt.datetime)):
        return "a date"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return type(value).__name__


def _hint(value: object) -> str:
    if isinstance(value, bool):
        return " (YAML 1.1 reads unquoted yes/no/on/off/true/false as booleans: quote it)"
    if isinstance(value, (dt.date, dt.datetime)):
        return " (YAML reads unquoted dates as dates: quote it)"
    if isinstance(value, (int, float)):
        return " (quote numbers used as text)"
    return ""
