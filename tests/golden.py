"""The golden parse: what the corpus stage makes of a fixed corpus, pinned in a file.

The corpus is a generated one (`tests.generate`, fixed count and seed), hand-made
hostile and repairable documents (every branch of framing, YAML, the secret and field
cleaning), and the seeds. Each file's outcome (the Article's fields with its digest,
quality and repairs, or the Skip's reason and kind) is written as canonical JSON; the
golden file keeps a SHA-256 of it per document, and the whole JSON for the seeds. A
change to any outcome is a change of `feeds.corpus.PARSER_VERSION`: bump it and
regenerate with

    python -m tests.golden --write

`python -m tests.golden --show LABEL` prints one document's outcome now.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from feeds.corpus import PARSER_VERSION, Found, LoadOptions, Parsed, Skip, read_document, scan
from tests.generate import write_corpus
from tests.support import PROJECT_ROOT, SEEDS, document

GOLDEN_FILE = PROJECT_ROOT / "tests" / "fixtures" / "corpus_golden.json"
REGENERATE = "python -m tests.golden --write"
GENERATED_COUNT = 3000
GENERATED_SEED = 21
DIGEST_CHARS = 16  # 64 bits per document: enough to see a change, small enough to check in
SECRET = "Z2VuZXJhdGVkLXNlY3JldC10b2tlbg==;bm9uY2U="


def canonical(outcome: Parsed | Skip) -> str:
    """One outcome as sorted, compact JSON; datetimes in ISO 8601, tuples as lists."""
    kind = "parsed" if isinstance(outcome, Parsed) else "skip"
    return json.dumps(
        {"outcome": kind, **dataclasses.asdict(outcome)},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
        default=_datetime_text,
    )


def _datetime_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def _secured(text: str, value: str = f'"{SECRET}"') -> str:
    return text.replace("---\n", f"---\nsecured: {value}\n", 1)


# One field of the seed-shaped document replaced: each a branch of the field cleaning.
FIELD_CASES: dict[str, dict[str, str | None]] = {
    "title-markup": {"title": '"<b>Bold</b>  and\\ttabs <a href=\\"x\\">link</a>"'},
    "title-lone-brackets": {"title": '"3 < 5 and 7 > 2 <>"'},
    "title-spaced": {"title": '"   spaced    out\\n\\nlines   "'},
    "title-controls": {"title": '"ctl\\x00\\x07\\x1b[31m\\x7f\\x85nel\\u2028ls\\ufffe\\ufdd0"'},
    "title-unicode-spaces": {"title": '"nbsp\\u00a0x\\u3000y\\u2009z\\u200bw"'},
    "title-300": {"title": '"' + "t" * 300 + '"'},
    "title-301": {"title": '"' + "t" * 301 + '"'},
    "title-long-words": {"title": '"' + "Long title " * 40 + '"'},
    "title-int": {"title": "123"},
    "title-float": {"title": "1.50"},
    "title-bool": {"title": "true"},
    "title-list": {"title": "[a, b]"},
    "title-empty": {"title": '""'},
    "title-only-tags": {"title": '"<b></b>"'},
    "title-null": {"title": "~"},
    "title-emoji": {"title": '"Rocket 🚀 über Zürich 東京"'},
    "excerpt-long": {"excerpt": '"' + "word " * 600 + '"'},
    "excerpt-list": {"excerpt": "\n  - not\n  - text"},
    "excerpt-int": {"excerpt": "42"},
    "excerpt-markup": {"excerpt": '"<img src=x onerror=alert(1)> ]]> &amp; &lt;"'},
    "category-list": {"category": "[x]"},
    "category-markup": {"category": '"<i>tech</i>"'},
    "category-empty": {"category": '""'},
    "date-plain-day": {"publishedDateTime": "2021-12-15"},
    "date-offset": {"publishedDateTime": "2021-12-15T18:10:00+05:30"},
    "date-rfc2822": {"publishedDateTime": '"Wed, 15 Dec 2021 18:10:00 GMT"'},
    "date-yaml11-space": {"publishedDateTime": "2021-12-15 13:10:00 -5"},
    "date-yaml11-lower": {"publishedDateTime": "2021-12-15t18:10:00z"},
    "date-fraction": {"publishedDateTime": "2021-12-15T18:10:00.123456789Z"},
    "date-1899": {"publishedDateTime": "1899-12-31T00:00:00Z"},
    "date-9999": {"publishedDateTime": "9999-12-31T23:59:59-01:00"},
    "date-int": {"publishedDateTime": "12345"},
    "date-feb-30": {"publishedDateTime": "2021-02-30T00:00:00Z"},
    "date-empty": {"publishedDateTime": '""'},
    "date-blank": {"publishedDateTime": '"   "'},
    "date-words": {"publishedDateTime": '"next tuesday"'},
    "date-list": {"publishedDateTime": "[1, 2]"},
    "url-upper-default-port": {"webUrl": '"HTTP://Example.COM:80/Path?utm_source=x&a=1#frag"'},
    "url-https-default-port": {"webUrl": '"https://example.com:443/x"'},
    "url-port-zero": {"webUrl": '"https://example.com:0/x"'},
    "url-port-huge": {"webUrl": '"https://example.com:99999/x"'},
    "url-port-text": {"webUrl": '"https://example.com:abc/x"'},
    "url-ipv6": {"webUrl": '"https://[::1]:8080/x"'},
    "url-ipv6-broken": {"webUrl": '"https://[bad/x"'},
    "url-userinfo": {"webUrl": '"https://user:pw@Example.com/x"'},
    "url-no-host": {"webUrl": '"http://"'},
    "url-empty-host": {"webUrl": '"https:///path"'},
    "url-ftp": {"webUrl": '"ftp://example.com/x"'},
    "url-relative": {"webUrl": '"//example.com/x"'},
    "url-space": {"webUrl": '"https://exa mple.com/x"'},
    "url-padded": {"webUrl": '"  https://example.com/padded  "'},
    "url-control": {"webUrl": '"https://example.com/\\x7f"'},
    "url-nbsp": {"webUrl": '"https://example.com/a\\u00a0b"'},
    "url-too-long": {"webUrl": '"https://example.com/' + "a" * 2100 + '"'},
    "url-2048": {"webUrl": '"https://example.com/' + "a" * (2048 - 20) + '"'},
    "url-unicode": {"webUrl": '"https://例え.jp/パス"'},
    "url-tracking": {"webUrl": '"https://example.com/story.html?fbclid=1&&gclid=2&x&UTM_x=3"'},
    "url-query-no-path": {"webUrl": '"https://example.com?q=1"'},
    "url-bare-host": {"webUrl": '"https://example.com"'},
    "url-javascript": {"webUrl": '"javascript:alert(1)"'},
    "url-int": {"webUrl": "42"},
    "url-list": {"webUrl": "[https://example.com/x]"},
    "url-empty-then-original": {"webUrl": '""', "originalUrl": '"https://example.com/orig"'},
    "url-bad-then-original": {"webUrl": '"nope"', "originalUrl": '"https://Example.com/o/"'},
    "url-both-bad": {"webUrl": '"nope"', "originalUrl": '"mailto:x@example.com"'},
    "url-none-provider-name": {"webUrl": None},
    "url-backslash": {"webUrl": '"https://example.com\\\\@evil.com/x"'},
    "url-at-host": {"webUrl": '"https://a@b@example.com:8080/x"', "provider": None},
    "url-port-host": {"webUrl": '"https://Example.com:8443/x"', "provider": None},
    "provider-string": {"provider": '"Provider As A String"'},
    "provider-www-dot": {"provider": "\n  name: N\n  domain: WWW.Example.COM."},
    "provider-idna": {"provider": "\n  name: N\n  domain: bücher.example"},
    "provider-punycode": {"provider": "\n  domain: xn--bcher-kva.example"},
    "provider-feed-ext": {"provider": "\n  name: N\n  domain: example.rss"},
    "provider-one-label": {"provider": "\n  name: N\n  domain: localhost"},
    "provider-bad-label": {"provider": "\n  name: N\n  domain: -bad-.com"},
    "provider-empty-label": {"provider": "\n  name: N\n  domain: a..b"},
    "provider-underscore": {"provider": "\n  name: N\n  domain: exa_mple.com"},
    "provider-domain-int": {"provider": "\n  name: N\n  domain: 123"},
    "provider-int": {"provider": "123"},
    "provider-list": {"provider": "[a]"},
    "provider-name-int": {"provider": "\n  name: 123"},
    "provider-name-markup": {"provider": '\n  name: "<b>Evil</b>  Corp"'},
    "provider-name-unicode": {"provider": '\n  name: "Münchner Zeitung & Co"'},
    "provider-empty-no-link": {"provider": '\n  name: ""', "webUrl": None},
    "provider-none-from-link": {"provider": None},
    "provider-domain-only": {"provider": "\n  domain: only.example"},
    "topics-many": {"topics": "\n" + "".join(f"  - Topic {i}\n" for i in range(25))},
    "topics-same-slug": {"topics": '\n  - AI\n  - ai\n  - " A-i "\n  - a_i'},
    "topics-types": {"topics": "\n  - 1\n  - 2.5\n  - true\n  - {a: b}\n  - ~\n  - '  '"},
    "topics-string": {"topics": '"Just One Topic"'},
    "topics-mapping": {"topics": "{a: b}"},
    "topics-number": {"topics": "7"},
    "topics-paths": {"topics": '\n  - "../../etc/passwd"\n  - "%2e%2e%2f"\n  - "C++"\n  - C#'},
    "images-mixed": {
        "images": '\n  - not a dict\n  - url: "/relative.jpg"\n  - url: "data:image/png;b,AA"'
        '\n  - url: "https://ok.example/Pic.JPG?x=1"\n    width: " 700 "\n    height: 450.0'
        "\n    title: 5"
    },
    "images-sizes": {
        "images": '\n  - url: "https://ok.example/a.webp"\n    width: 700.5\n    height: -1'
        '\n    title: "<b>Caption</b>"'
    },
    "images-big": {
        "images": '\n  - url: "https://ok.example/a.b/c"\n    width: 1000000\n    height: true'
    },
    "images-svg": {"images": '\n  - url: "https://ok.example/v.svg#x"\n    width: "abc"'},
    "images-string": {"images": '"https://ok.example/a.jpg"'},
    "images-mapping": {"images": '\n  url: "https://ok.example/m.png"'},
    "images-number": {"images": "3"},
    "images-late": {"images": "\n" + "  - x\n" * 20 + '  - url: "https://ok.example/late.png"'},
    "related-many": {
        "related": "\n"
        + "".join(f'  - title: "R {i}"\n    webUrl: "https://r.example/{i}"\n' for i in range(12))
    },
    "related-mixed": {
        "related": '\n  - x\n  - title: {a: b}\n    webUrl: "https://r.example/1"'
        '\n  - title: "Only original"\n    originalUrl: "https://r.example/2"'
        '\n    provider: {name: 5}\n  - title: "Provider string"\n    webUrl: "https://r.example/3"'
        '\n    provider: "P"\n  - title: ""\n    webUrl: "https://r.example/4"'
        '\n  - title: "<b>No url</b>"\n  - title: "Named"\n    webUrl: "https://r.example/5"'
        '\n    provider: {name: "  <i>Wire</i> "}'
    },
    "related-string": {"related": '"not a list"'},
    "quality-text": {"quality": '"abc"'},
    "quality-numeric-text": {"quality": '"12.5"'},
    "quality-list": {"quality": "[1]"},
    "quality-exp": {"quality": "1e3"},
    "quality-inf": {"quality": ".inf"},
    "quality-octal-like": {"quality": "0777"},
    "published-no": {"published": "no"},
    "published-off-caps": {"published": "OFF"},
    "published-false-padded": {"published": '" false "'},
    "published-zero": {"published": "0"},
    "heat-bool-maybe": {"heat": "!!bool maybe"},
    "heat-timestamp": {"heat": "!!timestamp notadate"},
    "heat-int-tag": {"heat": "!!int x"},
    "heat-binary": {"heat": "!!binary aGVsbG8="},
    "heat-python": {"heat": "!!python/name:os.system"},
    "heat-local-tag": {"heat": "!local x"},
}

# The secured token: withheld, and a document holding a copy of it elsewhere refused.
SECRET_CASES: dict[str, str] = {
    "secret-plain": _secured(document()),
    "secret-null": _secured(document(), "~"),
    "secret-empty": _secured(document(), '""'),
    "secret-int": _secured(document(), "12345678"),
    "secret-list": _secured(document(topics="\n  - AI\n  - tok2"), "[tok1, tok2]"),
    "secret-mapping": _secured(
        document(excerpt='"x deep-secret-value y"'), "{v: deep-secret-value}"
    ),
    "secret-in-excerpt": _secured(document(excerpt=f'"see {SECRET} here"')),
    "secret-as-topic": _secured(document(topics=f'\n  - "{SECRET}"')),
    "secret-as-key": _secured(document(related=f'\n  - {{"{SECRET}": x}}')),
    "secret-short-whole": _secured(document(title='"abc"'), "abc"),
    "secret-short-inside": _secured(document(title='"abcdef"'), "abc"),
    "secret-8-inside": _secured(document(title='"xxabcdefghxx"'), "abcdefgh"),
    "secret-across-values": _secured(document(title='"first"', excerpt='"second"'), '"st\\0se"'),
    "secret-alias": f'---\nsecured: &s "{SECRET}"\ntitle: *s\n---\n',
    "merge-key": "---\nbase: &b {title: x}\n<<: *b\n---\n",
    "merge-key-plain": "---\ntitle: x\n<<: {title: y}\n---\n",
    "merge-key-nested": document(provider="\n  <<: {name: x}"),
    "too-many-values": document(topics="\n" + "  - a\n" * 20_001),
    "many-values-fine": document(heat="\n" + "  - a\n" * 19_990),
}

_DEEP = "---\nx: {}\ntitle: t\n---\n"

# Framing, encodings and YAML structure: each a branch before the fields are read.
RAW_CASES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \n\t\n",
    "binary": bytes(range(256)) * 4,
    "nul-middle": document().encode().replace(b"headline", b"head\x00line"),
    "not-utf8": document(title='"Caf\xe9"').encode("latin-1"),
    "truncated-utf8": document().encode()[:-3] + "é".encode()[:1],
    "bom-utf8": codecs.BOM_UTF8 + document(title='"BOM"').encode(),
    "bom-utf16-le": "\ufeff".encode("utf-16-le") + document(title='"LE"').encode("utf-16-le"),
    "bom-utf16-be": "\ufeff".encode("utf-16-be") + document(title='"BE"').encode("utf-16-be"),
    "bom-utf16-odd": codecs.BOM_UTF16_LE + b"-\x00-\x00-",
    "utf16-no-bom": document().encode("utf-16-le"),
    "crlf": document(title='"CRLF"').replace("\n", "\r\n").encode(),
    "cr-only": document(title='"CR"').replace("\n", "\r").encode(),
    "mixed-newlines": document(title='"Mixed"').replace("\n", "\r\n", 3).encode(),
    "no-front-matter": b"just some text\n",
    "leading-newline": b"\n" + document().encode(),
    "leading-space": b" " + document().encode(),
    "unclosed": b"---\ntitle: x\n",
    "only-opening": b"---\n",
    "empty-front": b"---\n---\n",
    "blank-front": b"---\n\n\n---\nbody\n",
    "null-front": b"---\n~\n---\n",
    "list-front": b"---\n- a\n- b\n---\n",
    "scalar-front": b"---\njust text\n---\n",
    "int-front": b"---\n42\n---\n",
    "long-dashes": document().replace("---", "-----").encode(),
    "trailing-spaces": document().replace("---\n", "---  \t\n").encode(),
    "form-feed-after": document().replace("---\n", "---\x0c\n", 1).encode(),
    "nel-after": document().replace("---\n", "---\x85\n", 1).encode(),
    "dash-comment": document().replace("---\n", "--- # c\n", 1).encode(),
    "dash-glued": b"---title: x\n---\n",
    "two-dashes": b"--\ntitle: x\n--\n",
    "closing-no-newline": document().rstrip("\n").encode(),
    "closing-dots": b"---\ntitle: x\n...\n",
    "dots-then-dashes": document().replace("\n---\n", "\n...\n---\n").encode(),
    "body-after": (document() + "body text\n---\nmore: yaml\n---\n").encode(),
    "blank-lines-at-boundary": document().replace("---\n", "---\n\n\n", 1).encode(),
    "dashes-in-value": document(excerpt='"a --- b"').encode(),
    "dashes-line-in-block": document(excerpt="|\n  one\n  ---\n  two").encode(),
    "malformed": b"---\ntitle: [unclosed\n---\n",
    "tab-indent": b"---\ntitle: x\n\tsecured: y\n---\n",
    "colon-soup": b"---\n: :\n---\n",
    "two-documents": b"---\ntitle: a\n---\ntitle: b\n",
    "yaml-directive": b"---\n%YAML 1.2\ntitle: x\n---\n",
    "complex-key": b"---\n{[1, 2]: 3}\n---\n",
    "python-object": b"---\n!!python/object:os.system [ls]\n---\n",
    "alias": b"---\na: &x [1, 2]\nb: *x\ntitle: t\n---\n",
    "alias-cycle": b"---\ntitle: x\na: &a [*a]\n---\n",
    "deep-flow-64": _DEEP.format("[" * 63 + "]" * 63).encode(),
    "deep-flow-65": _DEEP.format("[" * 65 + "]" * 65).encode(),
    "deep-flow-open": _DEEP.format("[" * 30_000).encode(),
    "deep-block": ("---\nx:\n" + "- " * 30_000 + "\n---\n").encode(),
    "deep-block-lines": (
        "---\nx:\n" + "".join(" " * (2 * i) + "- \n" for i in range(80)) + "---\n"
    ).encode(),
    "brackets-shallow": _DEEP.format("[" + ", ".join(["[a]"] * 20) + "]").encode(),
    "wide-prefix-shallow": document(excerpt='"' + " " * 30 + 'x"').encode(),
    "mapping-deep": _DEEP.format("{a: " * 70 + "1" + "}" * 70).encode(),
    "many-events": ("---\nx: [" + "[1]," * 27_000 + "]\n---\n").encode(),
}


def with_field(text: str, key: str, value: str | None) -> str:
    """`text` with its top-level `key` block (the line and its indented ones) replaced."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    new = [] if value is None else [f"{key}: {value}" if value != "" else f"{key}:"]
    if start is None:
        return "\n".join([lines[0], *new, *lines[1:]])
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return "\n".join([*lines[:start], *new, *lines[end:]])


MUTATED_EVERY = 7  # every 7th generated document also appears with one field case applied


def mutate_generated(root: Path) -> None:
    """Field cases applied to real-shaped documents, the generated neighbours around them."""
    cases = list(FIELD_CASES.values())
    paths = sorted((root / "generated").rglob("*.txt"))
    for number, path in enumerate(paths[::MUTATED_EVERY]):
        text = path.read_text(encoding="utf-8")
        for key, value in cases[number % len(cases)].items():
            text = with_field(text, key, value)
        (root / "mutated").mkdir(exist_ok=True)
        (root / "mutated" / path.name).write_text(text, encoding="utf-8")


def hostile_documents() -> dict[str, bytes]:
    """Every hand-made case, by file name."""
    cases = {
        f"field-{name}.txt": document(**fields).encode() for name, fields in FIELD_CASES.items()
    }
    cases.update({f"{name}.txt": text.encode() for name, text in SECRET_CASES.items()})
    cases.update({f"raw-{name}.txt": raw for name, raw in RAW_CASES.items()})
    return cases


def build_corpus(root: Path) -> None:
    """The golden corpus: generated documents, hostile ones and the seeds, in three folders."""
    write_corpus(root / "generated", GENERATED_COUNT, GENERATED_SEED)
    (root / "hostile").mkdir()
    for name, raw in hostile_documents().items():
        (root / "hostile" / name).write_bytes(raw)
    mutate_generated(root)
    shutil.copytree(SEEDS, root / "seeds")


def outcomes(root: Path) -> Iterator[tuple[str, str]]:
    """(label, canonical outcome) of every document below root, one `read_document` each."""
    options = LoadOptions()
    for found in scan(root):
        assert isinstance(found, Found), found
        yield found.path, canonical(read_document(root, found.path, options))


def record(root: Path) -> dict[str, Any]:
    """What the golden file holds for the corpus below root."""
    documents, seeds = {}, {}
    for label, outcome in outcomes(root):
        documents[label] = digest(outcome)
        if label.startswith("seeds/"):
            seeds[label] = json.loads(outcome)
    return {
        "parser_version": PARSER_VERSION,
        "generated": {"count": GENERATED_COUNT, "seed": GENERATED_SEED},
        "hostile": len(hostile_documents()),
        "seeds": seeds,
        "documents": documents,
    }


def current() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="golden-") as directory:
        build_corpus(Path(directory))
        return record(Path(directory))


def changed_documents(golden: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Labels whose outcome differs, and labels only one side has."""
    before, after = golden["documents"], now["documents"]
    return sorted(
        label for label in before.keys() | after.keys() if before.get(label) != after.get(label)
    )


def write(path: Path = GOLDEN_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(current(), sort_keys=True, indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def show(labels: Sequence[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="golden-") as directory:
        root = Path(directory)
        build_corpus(root)
        for label in labels:
            print(label, canonical(read_document(root, label, LoadOptions())))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN_FILE.name}")
    parser.add_argument("--show", nargs="+", metavar="LABEL", help="print outcomes now")
    args = parser.parse_args(argv)
    if args.show:
        show(args.show)
    elif args.write:
        write()
        print(f"wrote {GOLDEN_FILE.relative_to(PROJECT_ROOT)} (PARSER_VERSION {PARSER_VERSION})")
    else:
        changed = changed_documents(json.loads(GOLDEN_FILE.read_text(encoding="utf-8")), current())
        print("\n".join(changed) or "no change")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
