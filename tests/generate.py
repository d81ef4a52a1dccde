"""A deterministic synthetic corpus in the seeds' format, for load tests and benchmarks.

Real corpora cannot be shipped, so this writes any number of look-alike documents:
long-tail topics and providers, awkward characters, several date forms, optional
fields. The same (count, seed) always gives byte-identical files, so benchmark runs
compare like with like.

Speed matters at a million documents, so YAML is written with f-strings (not
`yaml.dump`), text comes from phrase banks built once per corpus, and draws use
`random()` arithmetic rather than the slower `randint`/`choice`.

    python -m tests.generate DIR --count N [--seed S] [--workers W]
"""

from __future__ import annotations

import argparse
import base64
import calendar
import multiprocessing
import os
import time
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Generic, TypeVar

FILES_PER_FOLDER = 1000
MAX_PROVIDERS = 5000
TOPIC_COUNT = 300
_START = calendar.timegm((2020, 7, 1, 0, 0, 0))
_END = calendar.timegm((2026, 6, 30, 23, 59, 59))
_SPAN = _END - _START + 1
_DAY0 = _START - 86400
_BANK_SIZE = 2048
T = TypeVar("T")
Draw = Callable[[], float]


def _table(text: str, separator: str | None = None) -> tuple[str, ...]:
    """A tuple from a compact text table, so the word lists stay readable after formatting."""
    return tuple(item.strip() for item in text.split(separator) if item.strip())


_NAMED_TOPICS = _table(
    """
    AI | Machine Learning | Computer Vision | Natural Language Processing | Robotics
    | Cybersecurity | Privacy | Cloud Computing | Startups | Semiconductors | Climate | Energy
    | Space | Health | Biotech | Finance | Crypto | Policy | Education | Open Source
    | Facial Recognition | Autonomous Vehicles | Data Science | Quantum Computing | 5G
    | Smartphones | Gaming | Social Media | E-commerce | Café Culture | Deep Learning | C++
    | Ökonomie | R&D | Drones | Wearables | Python | Regulation | Supply Chain
    | Chips & Hardware | Électricité | Batteries | AR/VR | Smart Cities | Telecom | Biometrics
    | Search | Media | Ethics | Labor | Agriculture | Transportation | Defense | Retail
    | Journalism | Mathematics | Physics | Genomics | Neuroscience | Städtebau | Q&A
    """,
    "|",
)
_WORDS = _table(
    """
    the a of new city data model ban use tech technology facial recognition police report
    study shows first court rules users government plan launch startup funding million
    billion record growth chip market cloud open source privacy security breach vote council
    law state federal agency research team robot drone car battery energy climate solar wind
    grid network phone app update release version learning neural language vision system
    tool platform service company deal merger shares profit loss quarter year week today
    experts warn says could will may after before amid over under against with without into
    from across global local national health hospital patients trial vaccine school students
    teachers workers jobs wages strike supply chain factory export import price rates bank
    inflation economy growth risk Boston Berlin Tokyo Paris Lagos Mumbai Seattle Toronto EU
    NASA UN Massachusetts
    """
)
_SPECIALS = _table(
    """
    & | R&D | < | > | 3 < 5 | "quoted" | 'scare quotes' | it's | don't | — | é | über | 🚀 | 📈
    | C++ | AT&T | 50% | #1 | Q&A: | x: y | back\\slash | Zürich | café | naïve | résumé
    | São Paulo | Köln | Ångström | Ελλάδα | 東京
    """,
    "|",
)
_NAME_FIRST = _table(
    """
    Daily Morning Evening Metro Global National Northern Coastal Valley Capital Pacific
    Atlantic Prairie Harbor Summit River Union Liberty Central Southern Western Eastern Tech
    Future Digital Open Independent Citizen Bright Nordic Münchner Côte
    """
)
_NAME_SECOND = _table(
    """
    Herald Times Post Ledger Courier Gazette Tribune Journal Review Monitor Observer Chronicle
    Dispatch Wire Report News Standard Register Bulletin Sentinel Beacon Digest Insider Zeitung
    """
)
_CATEGORIES = ("news",) * 12 + ("technology", "science", "business", "opinion")
_TYPES = ("article",) * 18 + ("video", "blog")
_OFFSETS = (
    ("+02:00", 7200),
    ("-05:00", -18000),
    ("+05:30", 19800),
    ("+09:00", 32400),
    ("-03:00", -10800),
    ("+01:00", 3600),
    ("-08:00", -28800),
    ("+00:00", 0),
)
_SIZES = _table("1200x630 1920x1080 700x450 3000x2000 1024x682 800x800 640x480 1280x720 400x300")
_EXTENSIONS = (".jpg",) * 10 + (".png",) * 3 + (".webp",) * 3 + ("", "?w=1200&q=80", ".jpg?v=2")


class _LongTail(Generic[T]):
    """Zipf-like sampling: a few items are very common, most are rare, as in real corpora."""

    def __init__(self, items: Sequence[T], exponent: float) -> None:
        self.items = items
        weights = (1.0 / (rank + 1) ** exponent for rank in range(len(items)))
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1]
        self.last = len(items) - 1

    def pick(self, r: Draw) -> T:
        return self.items[bisect(self.cumulative, r() * self.total, 0, self.last)]


@dataclass(frozen=True, slots=True)
class _Phrase:
    """Bank text, already YAML-escaped, with its ASCII URL slug (ending in `-`, or empty)."""

    text: str
    slug: str


@dataclass(frozen=True, slots=True)
class _Provider:
    """A provider with its YAML blocks prebuilt, since each is written many times."""

    host: str  # used in URLs even when the document gives no domain
    block: str  # top-level `provider:` mapping
    related_block: str  # the same, indented for a related item


@dataclass(frozen=True, slots=True)
class _Banks:
    """Everything drawn per document, prebuilt once per corpus: cheap picks, not composition."""

    heads: tuple[tuple[_Phrase, ...], tuple[_Phrase, ...]]  # sentence case, Title Case
    tails: tuple[tuple[_Phrase, ...], tuple[_Phrase, ...]]
    sentences: tuple[str, ...]
    providers: _LongTail[_Provider]
    topics: _LongTail[str]  # prebuilt `  - "name"` lines


def _q(text: str) -> str:
    """YAML double-quoted content; the generated text has no control characters."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _pick(items: Sequence[T], r: Draw) -> T:
    return items[int(r() * len(items))]


def _upper_first(word: str) -> str:
    return word[:1].upper() + word[1:]


def _words(rng: Random, low: int, high: int) -> list[str]:
    """Random words, now and then with a special character fragment mixed in."""
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    if rng.random() < 0.08:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_SPECIALS))
    return words


def _phrase(words: list[str]) -> _Phrase:
    slug = "".join(f"{w.lower()}-" for w in words if w.isascii() and w.isalnum())
    return _Phrase(_q(" ".join(words)), slug)


def _phrases(rng: Random, title_case: bool, first: bool) -> tuple[_Phrase, ...]:
    """Title halves: any head with any tail gives millions of distinct titles."""
    bank = []
    for _ in range(_BANK_SIZE):
        words = _words(rng, 2, 7)
        if title_case:
            words = [_upper_first(w) for w in words]
        elif first:
            words[0] = _upper_first(words[0])
        bank.append(_phrase(words))
    return tuple(bank)


def _sentence(rng: Random) -> str:
    words = _words(rng, 6, 24)
    return _q(f"{_upper_first(words[0])} {' '.join(words[1:])}.")


def _topic_lines() -> list[str]:
    """Named topics at the head of the distribution, generated ones in its tail."""
    names = list(_NAMED_TOPICS)
    names.extend(f"Topic {n}" for n in range(len(names), TOPIC_COUNT))
    return [f'  - "{_q(name)}"\n' for name in names]


def _provider(index: int) -> _Provider:
    """Provider `index`; names are unique, so the 2% without a domain stay distinct."""
    first, second = len(_NAME_FIRST), len(_NAME_SECOND)
    name = f"{_NAME_FIRST[index % first]} {_NAME_SECOND[index // first % second]}"
    if index >= first * second:
        name += f" {index // (first * second) + 1}"
    host = f"provider{index}.example.com"
    domain = None if index % 50 == 7 else (f"www.{host}" if index % 25 == 3 else host)
    lines = [f'name: "{_q(name)}"'] + ([f"domain: {domain}"] if domain else [])
    return _Provider(
        host=domain or f"site{index}.example.org",
        block="provider:\n" + "".join(f"  {line}\n" for line in lines),
        related_block="    provider:\n" + "".join(f"      {line}\n" for line in lines),
    )


@lru_cache(maxsize=2)
def _banks(count: int, seed: int) -> _Banks:
    """One corpus's banks, cached so each worker process builds them once.

    Providers scale with the count so small corpora still repeat their providers.
    """
    rng = Random(f"corpusgen/{seed}/banks")
    total = min(count // 20 + 10, MAX_PROVIDERS)
    return _Banks(
        heads=(_phrases(rng, False, True), _phrases(rng, True, True)),
        tails=(_phrases(rng, False, False), _phrases(rng, True, False)),
        sentences=tuple(_sentence(rng) for _ in range(4 * _BANK_SIZE)),
        providers=_LongTail([_provider(i) for i in range(total)], exponent=0.9),
        topics=_LongTail(_topic_lines(), exponent=1.0),
    )


def _title(banks: _Banks, r: Draw) -> tuple[str, str]:
    """A title and its slug prefix, from a head and a tail of the same style."""
    style = 0 if r() < 0.5 else 1
    head = banks.heads[style][int(r() * _BANK_SIZE)]
    tail = banks.tails[style][int(r() * _BANK_SIZE)]
    return f"{head.text} {tail.text}", head.slug + tail.slug


def _excerpt(banks: _Banks, r: Draw, most: int) -> str:
    sentences, size = banks.sentences, len(banks.sentences)
    return " ".join([sentences[int(r() * size)] for _ in range(1 + int(r() * most))])


def _calendar() -> tuple[str, ...]:
    """Every `YYYY-MM-DD` in range, a day either side for offsets: lookups beat `gmtime`."""
    days = (_END - _DAY0) // 86400 + 2
    return tuple(time.strftime("%Y-%m-%d", time.gmtime(_DAY0 + 86400 * d)) for d in range(days))


_DAYS = _calendar()
_MINUTES = tuple(f"T{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECONDS = tuple(f"{s:02d}" for s in range(60))


def _day(timestamp: int) -> str:
    return _DAYS[(timestamp - _DAY0) // 86400]


def _date(r: Draw, timestamp: int) -> str:
    """Mostly `2021-12-15T18:10:00Z`, sometimes with an offset or fractional seconds."""
    roll = r()
    offset, shift = _OFFSETS[int(r() * len(_OFFSETS))] if roll < 0.15 else ("Z", 0)
    day, second = divmod(timestamp + shift - _DAY0, 86400)
    fraction = f".{int(r() * 1000):03d}" if roll > 0.95 else ""
    return f"{_DAYS[day]}{_MINUTES[second // 60]}{_SECONDS[second % 60]}{fraction}{offset}"


def _image_tails(indent: str) -> tuple[str, ...]:
    """Size and cache lines, prebuilt: 90% cached, like the seeds."""
    return tuple(
        f"{indent}    width: {w}\n{indent}    height: {h}\n{indent}    isCached: {cached}\n"
        for w, h in (size.split("x") for size in _SIZES)
        for cached in ("true",) * 9 + ("false",)
    )


_IMAGE_TAILS = {"": _image_tails(""), "    ": _image_tails("    ")}


def _images(rng: Random, indent: str, count: int, year: str, title: str | None) -> str:
    """An `images:` list; URLs with and without extensions or query strings, as feeds have."""
    r, tails = rng.random, _IMAGE_TAILS[indent]
    lines = [f"{indent}images:\n"]
    for _ in range(count):
        bits = rng.getrandbits(64)  # one draw for the key, the host and the extension
        extension = _EXTENSIONS[(bits & 0xFF) % len(_EXTENSIONS)]
        lines.append(
            f'{indent}  - url: "https://img{(bits >> 8) & 15}.cdn.example.net/media/{year}/'
            f'{bits >> 16:012x}{extension}"\n{tails[int(r() * len(tails))]}'
        )
        if title is not None and r() < 0.5:
            lines.append(f'{indent}    title: "{title}"\n')
    return "".join(lines)


def _amp(indent: str, host: str, path: str) -> str:
    cdn = host.replace("-", "--").replace(".", "-")
    return (
        f'{indent}ampWebUrl: "https://{host}{path}amp/"\n'
        f'{indent}cdnAmpWebUrl: "https://{cdn}.cdn.ampproject.org/c/s/{host}{path}amp/"\n'
    )


def _related(rng: Random, banks: _Banks, timestamp: int, index: int) -> str:
    """One related article from another provider, published within two days of the main one."""
    r = rng.random
    provider = banks.providers.pick(r)
    when = min(max(timestamp + int(r() * 345_600) - 172_800, _START), _END)
    day = _day(when)
    title, slug = _title(banks, r)
    path = f"/{day[:4]}/{day[5:7]}/{slug}{index}-r{rng.getrandbits(24):x}/"
    images = _images(rng, "    ", 1, day[:4], None) if r() < 0.85 else ""
    return (
        f'  - title: "{title}"\n    excerpt: "{_excerpt(banks, r, 2)}"\n'
        f"    publishedDateTime: {_date(r, when)}\n"
        f'    webUrl: "https://{provider.host}{path}"\n'
        f"{_amp('    ', provider.host, path) if r() < 0.3 else ''}"
        f"    type: {_pick(_TYPES, r)}\n{provider.related_block}"
        f"    quality: {int(r() * 101)}\n{images}"
    )


def _secured(rng: Random) -> str:
    """An opaque token shaped like the seeds': base64 payload `;` base64 nonce."""
    payload = base64.b64encode(rng.randbytes(240 + 16 * int(rng.random() * 3))).decode()
    return f"{payload};{base64.b64encode(rng.randbytes(16)).decode()}"


def _urls(r: Draw, host: str, path: str) -> str:
    """originalUrl (often the same, sometimes tracked, sometimes absent), webUrl, AMP links."""
    web = f"https://{host}{path}"
    roll = r()
    original = "" if roll >= 0.7 else web if roll < 0.6 else f"{web}?utm_source=feed&utm_medium=rss"
    return (
        (f'originalUrl: "{original}"\n' if original else "")
        + f'webUrl: "{web}"\n'
        + (_amp("", host, path) if r() < 0.8 else "")
    )


def _extras(rng: Random, banks: _Banks, title: str, timestamp: int, index: int) -> str:
    """The optional lists: topics (0-4), images (70%), related articles (0-3)."""
    r = rng.random
    parts = []
    topics = dict.fromkeys([banks.topics.pick(r) for _ in range(int(r() * 5))])
    if topics:
        parts.append("topics:\n" + "".join(topics) + "\n")
    if r() < 0.7:
        year = _day(timestamp)[:4]
        parts.append(_images(rng, "", 1 + int(r() * 3), year, title) + "\n")
    related = int(r() * 4)
    if related:
        items = "".join([_related(rng, banks, timestamp, index) for _ in range(related)])
        parts.append(f"related:\n{items}\n")
    return "".join(parts)


def _document(rng: Random, banks: _Banks, index: int) -> str:
    """The full text of document `index`: front matter and an empty body."""
    r = rng.random
    provider = banks.providers.pick(r)
    timestamp = _START + int(r() * _SPAN)
    day = _day(timestamp)
    title, slug = _title(banks, r)
    excerpt = f'excerpt: "{_excerpt(banks, r, 3)}"\n' if r() < 0.97 else ""
    heat = -1 if r() < 0.8 else int(r() * 1000)
    return (
        f'---\ncategory: {_pick(_CATEGORIES, r)}\ntitle: "{title}"\n{excerpt}'
        f"publishedDateTime: {_date(r, timestamp)}\n"
        f"{_urls(r, provider.host, f'/{day[:4]}/{day[5:7]}/{slug}{index}/')}"
        f"type: {_pick(_TYPES, r)}\nquality: {int(r() * 101)}\nheat: {heat}\n"
        f"published: {'true' if r() < 0.7 else 'false'}\n\n{provider.block}\n"
        f"{_extras(rng, banks, title, timestamp, index)}"
        f'secured: "{_secured(rng)}"\n---\n'
    )


def _write(path: str, data: bytes) -> None:
    """Three system calls and no buffering layer: per-file overhead adds up at a million."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_folder(directory: Path, count: int, seed: int, folder: int) -> list[str]:
    """One folder's documents; seeded per folder, so folders can be written in any order."""
    banks = _banks(count, seed)
    count_width = max(3, len(str(count - 1)))
    name = f"{folder:0{max(3, len(str((count - 1) // FILES_PER_FOLDER)))}d}"
    (directory / name).mkdir(parents=True, exist_ok=True)
    rng = Random(f"corpusgen/{seed}/{folder}")
    first = folder * FILES_PER_FOLDER
    paths = []
    for index in range(first, min(first + FILES_PER_FOLDER, count)):
        path = f"{directory}/{name}/{index:0{count_width}d}_{rng.getrandbits(64):016x}.txt"
        _write(path, _document(rng, banks, index).encode("utf-8"))
        paths.append(path)
    return paths


def write_corpus(directory: Path, count: int, seed: int = 0, *, workers: int = 1) -> list[Path]:
    """Write `count` documents as `NNN/<index>_<hex>.txt`, at most 1,000 per folder.

    Folders keep huge corpora listable; zero-padded names keep sorted order numeric.
    The same (count, seed) gives byte-identical files whatever the number of workers.
    """
    task = partial(_write_folder, directory, count, seed)
    folders = range((count + FILES_PER_FOLDER - 1) // FILES_PER_FOLDER)
    if workers <= 1 or len(folders) < 2:
        return [Path(p) for batch in map(task, folders) for p in batch]
    with multiprocessing.Pool(min(workers, len(folders))) as pool:
        return [Path(p) for batch in pool.imap(task, folders) for p in batch]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", type=Path, help="where to write the documents")
    parser.add_argument("--count", type=int, required=True, help="number of documents")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)"
    )
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must not be negative")
    started = time.perf_counter()
    paths = write_corpus(args.directory, args.count, args.seed, workers=args.workers)
    seconds = time.perf_counter() - started
    rate = len(paths) / seconds if seconds else 0.0
    print(f"wrote {len(paths)} files to {args.directory} in {seconds:.2f}s ({rate:,.0f} docs/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
