"""Which YAML library should read front matter: speed per document and the values it gives.

Generates documents with `tests.generate` (plus the two seeds and a few hand-written
YAML 1.1/1.2 edge cases), takes each front matter as feeds cuts it, and for every library
times the parse of every document (the median of several rounds, libraries interleaved
within each round), then compares each library's values and the article built from them
with libyaml's (what feeds served before yaml-rs; the hand-written reader that sat in
front of libyaml gave the same values, only faster). feeds itself needs only yaml-rs:
install the others to compare them (`pip install PyYAML ruamel.yaml rapidyaml`); without
PyYAML the first library found is the reference. Run it again with:

    python -m bench.yaml_libraries [--count 3000] [--rounds 5]

rapidyaml builds a C++ tree, not Python values; turning that tree into dicts, dates and
numbers would be a hand-written YAML resolver again, so it is timed for parsing alone and
left out of the comparison.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

from feeds.corpus import LoadOptions, to_parsed
from feeds.corpus.frontmatter import YAML_OPTIONS, front_matter_text
from feeds.corpus.normalize import Unusable
from tests import generate as corpusgen

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
FIELDS = (
    "title",
    "excerpt",
    "publishedDateTime",
    "webUrl",
    "originalUrl",
    "provider",
    "topics",
    "images",
    "related",
    "category",
    "quality",
    "published",
)
# Where YAML 1.1 (libyaml) and YAML 1.2 read the same text differently, on served fields.
EDGE_CASES = {
    "published: no": "published: no\n",
    "topics no/on/yes": "topics:\n  - no\n  - on\n  - yes\n",
    "quality 0777": "quality: 0777\n",
    "quality 010": "quality: 010\n",
    "quoted date title": 'title: "2021-12-15"\n',
    "date with space": "publishedDateTime: 2021-12-15 18:10:00\n",
    "date lowercase t": "publishedDateTime: 2021-12-15t18:10:00z\n",
    "quoted date": 'publishedDateTime: "2021-12-15"\n',
    "date only": "publishedDateTime: 2021-12-15\n",
    "category yes": "category: yes\n",
    "sexagesimal": "quality: 1:20\n",
    "exponent": "quality: 1e3\n",
}
BASE = (
    'title: "Edge"\npublishedDateTime: 2022-03-04T05:06:07Z\n'
    'webUrl: "https://example.com/edge"\nprovider:\n  name: Example\n  domain: example.com\n'
)


def fronts(count: int, directory: Path) -> dict[str, str]:
    """Front matter texts by name: generated documents, the seeds, then the edge cases."""
    paths = corpusgen.write_corpus(directory, count, seed=7) + sorted(SEEDS.glob("*.txt"))
    found = {path.name: front_matter_text(path.read_text(encoding="utf-8")) for path in paths}
    for name, line in EDGE_CASES.items():
        key = line.split(":", 1)[0]
        kept = "".join(f for f in BASE.splitlines(keepends=True) if not f.startswith(key + ":"))
        found[f"edge: {name}"] = "\n" + kept + line
    return found


def libraries() -> dict[str, Callable[[str], Any]]:
    """Each candidate as text -> value; a missing package is reported and skipped."""
    found: dict[str, Callable[[str], Any]] = {}
    pyyaml = optional("yaml", "PyYAML")
    if pyyaml is not None:
        found["PyYAML CSafeLoader (libyaml)"] = lambda text: pyyaml.load(text, pyyaml.CSafeLoader)
    yaml_rs = optional("yaml_rs", "yaml-rs")
    if yaml_rs is not None:
        found["yaml-rs as feeds uses it"] = lambda text: yaml_rs.loads(text, **YAML_OPTIONS)
        found["yaml-rs defaults"] = yaml_rs.loads
    ruamel = optional("ruamel.yaml", "ruamel.yaml ruamel.yaml.clib")
    if ruamel is not None:
        found["ruamel.yaml safe (C)"] = ruamel.YAML(typ="safe", pure=False).load
    return found


def rapidyaml_parse() -> Callable[[str], Any] | None:
    ryml = optional("ryml", "rapidyaml")
    return None if ryml is None else lambda text: ryml.parse_in_arena(text.encode())


def optional(module: str, package: str) -> Any:
    """A candidate library, or None (and how to install it) when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"{module} is not installed: pip install {package}")
        return None


def outcome(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except Exception as error:  # every library fails in its own way; all count alike
        return Failed(type(error).__name__)


class Failed(str):
    """A parse that raised, by exception name."""


def article(value: Any, name: str) -> tuple[Any, ...] | str:
    """The fields the server uses from the article built on this value, or the skip reason."""
    if isinstance(value, Failed):
        return f"parse failed: {value}"
    if not isinstance(value, dict):
        return "not a mapping"
    try:
        parsed = to_parsed(name, value, b"", LoadOptions())
    except Unusable as error:
        return f"skipped: {error}"
    quality = parsed.quality
    published = value.get("published")
    return (*astuple(parsed.article), quality, published)


def timings(parsers: dict[str, Callable[[str], Any]], texts: list[str], rounds: int) -> dict:
    """Median ms per document of each parser, the parsers interleaved within each round."""
    runs: dict[str, list[float]] = {name: [] for name in parsers}
    for _ in range(rounds):
        for name, parse in parsers.items():
            started = time.perf_counter()
            for text in texts:
                outcome(parse, text)
            runs[name].append((time.perf_counter() - started) * 1000 / len(texts))
    return {name: statistics.median(values) for name, values in runs.items()}


def compare(parsers: dict[str, Callable[[str], Any]], found: dict[str, str]) -> None:
    """Print, for each library, the fields and articles that differ from the current loader."""
    reference_name, reference = next(iter(parsers.items()))
    expected = {name: outcome(reference, text) for name, text in found.items()}
    for library, parse in list(parsers.items())[1:]:
        fields: Counter[str] = Counter()
        examples: dict[str, str] = {}
        articles = 0
        for name, text in found.items():
            value, wanted = outcome(parse, text), expected[name]
            for key in FIELDS:
                mine = value.get(key) if isinstance(value, dict) else value
                theirs = wanted.get(key) if isinstance(wanted, dict) else wanted
                if repr(mine) != repr(theirs):
                    fields[key] += 1
                    examples.setdefault(key, f"{name}: {theirs!r:.60} -> {mine!r:.60}")
            if article(value, name) != article(wanted, name):
                articles += 1
                examples.setdefault(f"article {name}", f"{article(value, name)!r:.120}")
        print(f"\n{library} against {reference_name}:")
        print(f"  articles that differ: {articles} of {len(found)}")
        for key, count in fields.most_common():
            print(f"  {key}: {count} documents differ, e.g. {examples[key]}")
        for key, example in examples.items():
            if key.startswith("article "):
                print(f"  {key}: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="generated documents")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        found = fronts(arguments.count, Path(directory))
    parsers = libraries()
    timed = dict(parsers)
    ryml_parse = rapidyaml_parse()
    if ryml_parse is not None:
        timed["rapidyaml (parse only, no Python values)"] = ryml_parse
    texts = list(found.values())
    print(f"{len(texts)} front matters ({arguments.count} generated, 2 seeds, edge cases)")
    print("| library | ms per document (median of rounds) |\n|---|---:|")
    for name, ms in timings(timed, texts, arguments.rounds).items():
        print(f"| {name} | {ms:.4f} |")
    compare(parsers, found)


if __name__ == "__main__":
    main()
