"""Reading and validating corpus documents, and the report of what was skipped and why.

A document is read as bytes, decoded, split by python-frontmatter, parsed by yaml-rs
(YAML 1.2, in Rust) and turned into an `Article`, or into a `Skip` with a one-line reason.
Nothing here raises for a bad document: the server always starts with whatever can be
served.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import multiprocessing
import os
import re
import stat
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import yaml
import yaml_rs
from frontmatter.default_handlers import YAMLHandler

from feeds.model import Article, Image, Provider, Related, Topic, slugify
from feeds.normalize import (
    Unusable,
    aware_datetime,
    clean_text,
    domain_name,
    http_url,
    identity_url,
    image_mime_type,
    positive_int,
)

log = logging.getLogger("feeds.corpus")

PROGRESS_EVERY = 500
SUFFIXES = (".txt", ".md")
MAX_TITLE = 300
MAX_EXCERPT = 2000
MAX_NAME = 120
MAX_TOPICS = 20
MAX_IMAGES_SCANNED = 20
MAX_RELATED = 10
MAX_YAML_NODES = 20_000
MAX_DEPTH = 64  # nesting of mappings and sequences; real front matter needs about 6
SECRET_FIELD = "secured"  # an opaque token that is never served, logged or quoted
MIN_SECRET_MATCH = 8  # shorter secret strings are compared whole, not searched for
PARALLEL_CHUNK = 250  # documents per task: large enough to amortise pickling, small to balance


class Filtered(Unusable):
    """A usable document that a setting excludes; counted apart from broken ones."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What to load; `workers` changes only how fast, never the result."""

    include_unpublished: bool = True
    min_quality: float | None = None
    max_file_bytes: int = 1_048_576
    workers: int = 1  # processes parsing documents

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LoadOptions:
        return cls(
            include_unpublished=settings["INCLUDE_UNPUBLISHED"],
            min_quality=settings["MIN_QUALITY"],
            max_file_bytes=settings["MAX_FILE_BYTES"],
            workers=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        )

    def key(self) -> str:
        """The options that change the result, for naming an index."""
        return f"{self.include_unpublished}|{self.min_quality!r}|{self.max_file_bytes}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document that became an article; `digest` identifies its bytes for the corpus version."""

    path: str
    article: Article
    digest: str
    quality: float
    repairs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skip:
    path: str
    reason: str
    kind: str = "skipped"  # "skipped" (broken) or "filtered" (excluded by a setting)


@dataclass
class LoadReport:
    files: int = 0
    loaded: int = 0
    skipped: list[Skip] = field(default_factory=list)
    filtered: list[Skip] = field(default_factory=list)
    repairs: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def reasons(self) -> Counter[str]:
        """Skips counted by reason with file-specific detail removed."""
        return Counter(skip.reason.split(":", 1)[0] for skip in self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "loaded": self.loaded,
            "skipped": len(self.skipped),
            "filtered": len(self.filtered),
            "repaired": len(self.repairs),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Found:
    """A document file as its directory lists it: path below the root, size, mtime."""

    path: str
    size: int
    mtime_ns: int


def scan(root: Path) -> Iterator[Found | Skip]:
    """Every `*.txt`/`*.md` below root (hidden files and folders excepted), in a stable order.

    Nothing is opened: whatever a name is (a FIFO, a link, a device), reading it decides.
    A folder that cannot be listed is a Skip, so none is left out without a word.
    """
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as error:
            where = directory.relative_to(root).as_posix()
            reason = error.strerror or error.__class__.__name__
            yield Skip(f"{where}/", f"unreadable directory: {reason}")
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.name.lower().endswith(SUFFIXES):
                    info = _stat(entry)
                    label = Path(entry.path).relative_to(root).as_posix()
                    yield Found(label, info.st_size, info.st_mtime_ns)
            except OSError:
                continue  # gone while we looked: the next scan sees what is there
        pending.extend(reversed(folders))


def _stat(entry: os.DirEntry[str]) -> os.stat_result:
    """The stamp of what a name stands for; a dangling link's own stamp."""
    try:
        return entry.stat()
    except FileNotFoundError:
        return entry.stat(follow_symlinks=False)


def read_document(root: Path, label: str, options: LoadOptions) -> Parsed | Skip:
    """One file to an article or a reason; never raises or blocks for anything the file is."""
    try:
        raw = read_regular_file(root, label, options.max_file_bytes)
        metadata = parse_front_matter(raw)
        return to_parsed(label, metadata, raw, options)
    except Filtered as excluded:
        return Skip(label, str(excluded), "filtered")
    except Unusable as error:
        return Skip(label, str(error))


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def read_regular_file(root: Path, label: str, limit: int) -> bytes:
    """The bytes of a regular file of the corpus, up to `limit`; anything else is Unusable.

    The file is opened without blocking and without following a final symbolic link, and
    only then checked: opening a FIFO for reading would wait for a writer forever, and a
    device may never end. A symbolic link is followed only to a file inside the corpus.
    """
    try:
        descriptor = os.open(_target(root, root / label), _OPEN_FLAGS)
    except OSError as error:
        raise Unusable(f"unreadable: {error.strerror or error.__class__.__name__}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise Unusable("not a regular file: a FIFO, device, socket or directory")
        if info.st_size > limit:
            raise Unusable(f"too large: {info.st_size} bytes, limit {limit}")
        raw = _read_up_to(descriptor, limit + 1)
    except OSError as error:
        raise Unusable(f"unreadable: {error.strerror or error.__class__.__name__}") from None
    finally:
        os.close(descriptor)
    if len(raw) > limit:
        raise Unusable(f"too large: more than {limit} bytes")
    return raw


def _target(root: Path, path: Path) -> str:
    """The path to open: the file itself, or what its link points to inside the corpus."""
    if not path.is_symlink():
        return str(path)
    target = os.path.realpath(path)
    corpus = os.path.realpath(root)
    if os.path.commonpath([target, corpus]) != corpus:
        raise Unusable("a symbolic link to outside the corpus")
    return target


def _read_up_to(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(descriptor, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_front_matter(raw: bytes) -> dict[str, Any]:
    """Bytes to the front matter mapping, with reasons that never quote the document."""
    if not raw.strip():
        raise Unusable("empty file")
    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise Unusable("binary file: contains NUL bytes")
    text = _decode(raw).replace("\r\n", "\n").replace("\r", "\n")
    handler = YAMLHandler()
    if not handler.detect(text):
        raise Unusable("no front matter: the file must start with a '---' line")
    try:
        front, _body = handler.split(text)
    except ValueError:
        raise Unusable("no front matter: the closing '---' line is missing") from None
    metadata = _parse_yaml(front)
    if not isinstance(metadata, dict):
        raise Unusable(f"front matter is a {type(metadata).__name__}, not a mapping")
    _withhold_secret(metadata)
    return metadata


# Reasons in our own words: a YAML library's messages quote the document (and so could
# quote the secured token), so none of their text is ever passed on.
_YAML_PROBLEMS = {
    yaml.scanner.ScannerError: "a character, quote or indentation that cannot be read",
    yaml.parser.ParserError: "a structure that is not valid YAML",
    yaml.composer.ComposerError: "an undefined alias or more than one document",
    yaml.constructor.ConstructorError: "an unsupported tag or key",
}


# yaml-rs reads YAML 1.2: `no` is text and `0777` decimal (see `to_parsed` for
# `published`); dates stay text for `aware_datetime`, so a quoted "2021-12-15" title stays
# a title; any alias is refused (real front matter has none, and billion-laughs or
# `title: *secret` tricks need them); a repeated key keeps its last value, as libyaml did.
YAML_OPTIONS: dict[str, Any] = {
    "parse_datetime": False,
    "alias_limits": yaml_rs.AliasLimits(max_total_replayed_events=0),
    "duplicate_key_policy": yaml_rs.DuplicateKeyPolicy.LastWins,
}
_ERROR_LINE = re.compile(r"\bline ([0-9]+)")


def _parse_yaml(front: str) -> Any:
    """The YAML value of the front matter; any failure becomes Unusable in our words."""
    try:
        check_nesting(front)
        return yaml_rs.loads(front, **YAML_OPTIONS)
    except Unusable:
        raise
    except yaml.MarkedYAMLError as error:  # from libyaml's exact nesting measure
        problem = _YAML_PROBLEMS.get(type(error), "not valid YAML")
        where = f" at line {error.problem_mark.line + 1}" if error.problem_mark else ""
        raise Unusable(f"malformed YAML: {problem}{where}") from None
    except yaml_rs.YAMLDecodeError as error:
        raise Unusable(_decode_error_reason(str(error))) from None
    except Exception:  # a parser fed hostile text fails in many ways
        raise Unusable("malformed YAML: a value its tag cannot hold") from None


def _decode_error_reason(message: str) -> str:
    """yaml-rs's message classified, never quoted: it shows the document's text.

    The front matter starts on the opening `---` line, so its line numbers are the file's.
    """
    if "alias replay limit" in message:
        return "YAML aliases are not allowed"
    if message.startswith("Invalid value"):
        return "malformed YAML: a value its tag cannot hold"
    line = _ERROR_LINE.search(message)
    return "malformed YAML: not valid YAML" + (f" at line {line[1]}" if line else "")


# Ordinary text passes when it holds at most _FEW_BRACKETS brackets and no line starts with
# _WIDE_PREFIX characters that could be indentation or `- `, `? `, `: ` indicators.
_FEW_BRACKETS = 16
_WIDE_PREFIX = (MAX_DEPTH - _FEW_BRACKETS) // 2 - 1
_WIDE_LINE = re.compile(rf"^[ \t?:-]{{{_WIDE_PREFIX}}}", re.M)


def check_nesting(front: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before anything builds the tree.

    Parsers build nested values recursively: 30,000 `[` in 60 KB overflow libyaml's
    composer's C stack, and 30,000 `- ` on one line yaml-rs's, killing the process, so
    this check comes before them. It is cheap and certain for ordinary text: block
    collections nest only at strictly growing columns (two levels per column at most),
    each line's structure starts within its leading indentation and `- `, `? `, `: `
    indicators, and a flow collection needs a `[` or `{`. So with few brackets and no
    wide line prefix the depth is within the limit; only other text is measured exactly,
    from libyaml's event stream, which is flat and built without recursion.
    """
    brackets = front.count("[") + front.count("{")
    if brackets <= _FEW_BRACKETS and not _WIDE_LINE.search(front):
        return
    depth = 0
    for events, event in enumerate(yaml.parse(front, Loader=_EventLoader)):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise Unusable(f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if events > 4 * MAX_YAML_NODES:
            raise Unusable(f"front matter too large: more than {MAX_YAML_NODES} values")


_EventLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _withhold_secret(metadata: dict[str, Any]) -> None:
    """Drop the secured token, and refuse a document whose other values hold it.

    The token is only ever removed, never read into a reason. Aliases and merge keys are
    refused already; this also catches a copy, in any field, or through any future parser.
    """
    secret = metadata.pop(SECRET_FIELD, None)
    texts = _texts(metadata)
    if secret is None:
        return
    whole, joined = set(texts), "\0".join(texts)  # one search per secret, not per value
    for text in filter(None, _texts(secret)):
        if text in whole or (len(text) >= MIN_SECRET_MATCH and text in joined):
            raise Unusable(f"another field holds the {SECRET_FIELD} value (alias or copy)")


def _texts(root: Any) -> list[str]:
    """Every string in a YAML value, keys included; huge trees and merge keys are refused.

    One pass over the tree before any code reads fields from it. YAML 1.2 has no merge
    keys: yaml-rs keeps `<<` as a plain key, so a document relying on one would silently
    mean something else than its author wrote.
    """
    texts: list[str] = []
    stack = [root]
    values = 0
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            texts.append(node)
        elif kind is dict:
            if "<<" in node:
                raise Unusable("YAML merge keys (<<) are not supported")
            values += len(node)
            stack.extend(node)
            stack.extend(node.values())
        elif kind is list or kind is tuple:  # tuples: complex keys
            values += len(node)
            stack.extend(node)
        if values > MAX_YAML_NODES:
            raise Unusable(f"front matter too large: more than {MAX_YAML_NODES} values")
    return texts


def _decode(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise Unusable("not valid UTF-16 despite its byte-order mark") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unusable(
            f"not UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start}"
        ) from None


def to_parsed(label: str, meta: Mapping[str, Any], raw: bytes, options: LoadOptions) -> Parsed:
    """A parsed front-matter mapping as the article served (public for bench/yaml_libraries)."""
    repairs: list[str] = []
    title = clean_text(meta.get("title"), "title", MAX_TITLE)
    if not title:
        raise Unusable("title is missing or empty")
    published = aware_datetime(meta.get("publishedDateTime"), "publishedDateTime")
    link = _first_link(meta, repairs)
    provider = _provider(meta.get("provider"), link, repairs)
    quality = _quality(meta.get("quality"), repairs)
    if not options.include_unpublished and _unpublished(meta.get("published")):
        raise Filtered("published is false")
    if options.min_quality is not None and quality < options.min_quality:
        raise Filtered(f"quality {quality:g} below {options.min_quality:g}")
    article = Article(
        id=_article_id(link, title, provider, published.isoformat()),
        title=title,
        published=published,
        provider=provider,
        link=link,
        excerpt=_optional_text(meta, "excerpt", MAX_EXCERPT, repairs),
        category=_optional_text(meta, "category", MAX_NAME, repairs) or None,
        topics=_topics(meta.get("topics"), repairs),
        image=_first_image(meta.get("images"), repairs),
        related=_related(meta.get("related"), repairs),
    )
    return Parsed(label, article, hashlib.sha256(raw).hexdigest(), quality, tuple(repairs))


_FALSE_WORDS = frozenset(["false", "no", "off"])


def _unpublished(value: Any) -> bool:
    """`published: false`, and YAML 1.1's `no` and `off`: YAML 1.2 reads those as text,
    but a draft written for libyaml must not go live."""
    return value is False or (isinstance(value, str) and value.strip().lower() in _FALSE_WORDS)


def _article_id(link: str | None, title: str, provider: Provider, published: str) -> str:
    """A URN that depends only on what the article is, so renames and moves keep it, and
    corrected spellings of its link (`identity_url`) too."""
    identity = identity_url(link) if link else f"{provider.slug}\n{published}\n{title}"
    return uuid.uuid5(uuid.NAMESPACE_URL, identity).urn


def _optional_text(meta: Mapping[str, Any], key: str, limit: int, repairs: list[str]) -> str:
    try:
        return clean_text(meta.get(key), key, limit)
    except Unusable as error:
        repairs.append(f"{error}; ignored")
        return ""


def _first_link(meta: Mapping[str, Any], repairs: list[str]) -> str | None:
    for key in ("webUrl", "originalUrl"):
        value = meta.get(key)
        url = http_url(value)
        if url:
            return url
        if value not in (None, ""):
            repairs.append(f"{key} is not an http(s) URL; ignored")
    return None


def _provider(value: Any, link: str | None, repairs: list[str]) -> Provider:
    name: Any = None
    domain: str | None = None
    if isinstance(value, dict):
        name, domain = value.get("name"), domain_name(value.get("domain"))
        if value.get("domain") not in (None, "") and domain is None:
            repairs.append("provider.domain is not a host name; ignored")
    elif isinstance(value, str):
        name = value
    elif value is not None:
        repairs.append(f"provider is a {type(value).__name__}; ignored")
    clean_name = clean_text(name, "provider.name", MAX_NAME) if isinstance(name, str) else ""
    if not domain and not clean_name and link:
        domain = domain_name(link.split("/")[2].split("@")[-1].split(":")[0])
        repairs.append("provider missing; taken from the link's host")
    if domain:
        return Provider(clean_name or domain, domain, domain)
    if clean_name:
        return Provider(clean_name, slugify(clean_name))
    raise Unusable("provider is missing: no name, domain or link")


def _quality(value: Any, repairs: list[str]) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        repairs.append("quality is not a number; taken as 0")
        return 0.0


def _as_list(value: Any, field_name: str, repairs: list[str]) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str | dict):
        return [value]
    repairs.append(f"{field_name} is a {type(value).__name__}; ignored")
    return []


def _topics(value: Any, repairs: list[str]) -> tuple[Topic, ...]:
    topics: dict[str, Topic] = {}
    for item in _as_list(value, "topics", repairs):
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            repairs.append("a topic that is not text was ignored")
            continue
        name = clean_text(item, "topic", MAX_NAME)
        if name and len(topics) < MAX_TOPICS:
            topics.setdefault(slugify(name), Topic(name, slugify(name)))
    return tuple(topics.values())


def _first_image(value: Any, repairs: list[str]) -> Image | None:
    for item in _as_list(value, "images", repairs)[:MAX_IMAGES_SCANNED]:
        if not isinstance(item, dict):
            continue
        url = http_url(item.get("url"))
        if not url:
            continue
        title = item.get("title")
        return Image(
            url=url,
            mime_type=image_mime_type(url),
            width=positive_int(item.get("width")),
            height=positive_int(item.get("height")),
            title=clean_text(title, "image title", MAX_TITLE) if isinstance(title, str) else None,
        )
    return None


def _related(value: Any, repairs: list[str]) -> tuple[Related, ...]:
    related: list[Related] = []
    for item in _as_list(value, "related", repairs):
        if len(related) == MAX_RELATED:
            break
        if not isinstance(item, dict):
            continue
        url = http_url(item.get("webUrl")) or http_url(item.get("originalUrl"))
        try:
            title = clean_text(item.get("title"), "related title", MAX_TITLE)
        except Unusable:
            continue
        if url and title:
            provider = item.get("provider")
            name = provider.get("name") if isinstance(provider, dict) else None
            provider_name = clean_text(name, "name", MAX_NAME) if isinstance(name, str) else None
            related.append(Related(title, url, provider_name or None))
    return tuple(related)


@dataclass(frozen=True, slots=True)
class LoadedCorpus:
    articles: Sequence[Article]
    report: LoadReport
    digest: str  # hash of the served documents' bytes, independent of file names and order


def load_corpus(
    root: Path, options: LoadOptions, progress: Callable[[int], None] | None = None
) -> LoadedCorpus:
    """Every document below root, validated, deduplicated, with a report of what was left out.

    This reads every file (`feeds check`); serving reads the index instead.
    """
    started = time.perf_counter()
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist or is not a directory")
    corpus = _parse_corpus(root, options, progress)
    report = corpus.report
    report.seconds = time.perf_counter() - started
    log.info(
        "loaded %d of %d documents from %s in %.2fs (%d skipped, %d filtered)",
        report.loaded,
        report.files,
        root,
        report.seconds,
        len(report.skipped),
        len(report.filtered),
    )
    return corpus


def _parse_corpus(
    root: Path, options: LoadOptions, progress: Callable[[int], None] | None = None
) -> LoadedCorpus:
    """Parse every document; `progress` hears the count of documents read, now and then."""
    report = LoadReport()
    kept: dict[str, Parsed] = {}
    for outcome in _outcomes(root, options):
        report.files += 1
        if progress is not None and report.files % PROGRESS_EVERY == 0:
            progress(report.files)
        if isinstance(outcome, Skip):
            _record_skip(report, outcome)
            continue
        report.repairs.extend((outcome.path, note) for note in outcome.repairs)
        for note in outcome.repairs:
            log.info("repaired %s: %s", outcome.path, note)
        rival = kept.get(outcome.article.id)
        if rival is None:
            kept[outcome.article.id] = outcome
            continue
        winner, loser = sorted((rival, outcome), key=_preference)
        kept[outcome.article.id] = winner
        _record_skip(report, Skip(loser.path, f"duplicate: same article as {winner.path}"))
    report.loaded = len(kept)
    digest = hashlib.sha256("".join(sorted(p.digest for p in kept.values())).encode()).hexdigest()
    return LoadedCorpus(tuple(p.article for p in kept.values()), report, digest)


def _outcomes(root: Path, options: LoadOptions) -> Iterator[Parsed | Skip]:
    """Every document's outcome in file order, parsed by `options.workers` processes."""
    labels = []
    for found in scan(root):
        if isinstance(found, Skip):
            yield found
        else:
            labels.append(found.path)
    if options.workers < 2 or len(labels) < 2 * PARALLEL_CHUNK:
        yield from _read_chunk(root, labels, options)
        return
    chunks = [labels[i : i + PARALLEL_CHUNK] for i in range(0, len(labels), PARALLEL_CHUNK)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        for outcomes in pool.map(_read_chunk, repeat(root), chunks, repeat(options)):
            yield from outcomes


def _read_chunk(root: Path, labels: list[str], options: LoadOptions) -> list[Parsed | Skip]:
    return [read_document(root, label, options) for label in labels]


class CorpusError(RuntimeError):
    """The corpus as a whole cannot be loaded (missing directory, strict mode with skips)."""


def _preference(parsed: Parsed) -> tuple[float, str]:
    """Which copy of a duplicated article to serve: the higher quality, then by content."""
    return (-parsed.quality, parsed.digest)


def _record_skip(report: LoadReport, skip: Skip) -> None:
    if skip.kind == "filtered":
        report.filtered.append(skip)
        log.info("filtered %s: %s", skip.path, skip.reason)
    else:
        report.skipped.append(skip)
        log.warning("skipped %s: %s", skip.path, skip.reason)
