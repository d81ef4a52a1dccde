"""The fast front-matter reader gives exactly what `yaml.load` gives, or declines.

Declining is always safe (libyaml parses instead); a wrong value never is. So every case
here, including thousands of randomly damaged documents, must either be refused or equal
libyaml's result in value, types, key order and time zones.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from frontmatter.default_handlers import YAMLHandler

from feeds import corpusgen, frontmatter_fast, yamlload
from tests.support import SEEDS

_FAILED = object()


def _front(path: Path) -> str:
    return YAMLHandler().split(path.read_text(encoding="utf-8"))[0]


def _libyaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except Exception:  # any failure: the fast reader must then decline
        return _FAILED


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_size(v) for v in value)
    return 0


def exact_or_declined(text: str) -> bool:
    """Whether the fast reader accepted `text`; fails the test if it accepted it wrongly."""
    try:
        value, size = frontmatter_fast.load(text)
    except frontmatter_fast.Unsure:
        return False
    expected = _libyaml(text)
    assert expected is not _FAILED, f"accepted what libyaml refuses: {text!r}"
    assert value == expected, text
    assert repr(value) == repr(expected), text  # same types, key order and time zones
    assert size == _size(expected)
    return True


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("generated")
    return [_front(path) for path in corpusgen.write_corpus(root, 3000, seed=7)]


def test_seeds_are_read_exactly() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        assert exact_or_declined(_front(path)), path


def test_generated_documents_are_read_exactly_and_almost_all_accepted(
    generated: list[str],
) -> None:
    accepted = sum(exact_or_declined(text) for text in generated)
    assert accepted >= 0.99 * len(generated)


ACCEPTED = [
    "a: 1\nb: -1\nc: 0\nd: 1.5\ne: -0.0\nf: 007.50\n",
    "a: true\nb: False\nc: YES\nd: no\ne: On\nf: OFF\ng: ~\nh: null\ni:\nj: NULL\n",
    "y: 1\nn: 2\nYes_: 3\nnull_: 4\n_: 5\n",
    "at: 2021-12-15T18:10:00Z\nday: 2021-12-15\nfrac: 2021-12-15T18:10:00.5+05:30\n",
    "neg: 2021-12-15T18:10:00.123456-08:00\nzero: 2021-12-15T18:10:00+00:00\n",
    "minus: 2021-12-15T18:10:00-00:00\nnaive: 2021-12-15T18:10:00\n",
    "spaced: 2021-12-15 18:10:00\nshort: 2021-1-5T1:02:03.1234567 Z\nlower: 2021-12-15t18:10:00\n",
    "tz: 2021-12-15 18:10:00 -5\nempty_fraction: 2021-12-15T18:10:00.\n",
    'q: "tab\\there \\"quoted\\" back\\\\slash \\/ \\x41\\u00e9\\U0001F680"\n',
    'c: "\\0\\a\\b\\e\\f\\v\\r"\n',
    'q: "\\N\\_\\L\\P\\ "\n',
    "s: 'it''s ''quoted'' \"x\" \\n'\nempty: ''\ndq: \"\"\n",
    "p: plain text, no, just a#hash, 50% [ok] {ok} a,b it's\nurl: http://x.org/a?b=c#d\n",
    "p: -foo\nq: <b>\nr: =x\ns: .foo\nt: a - b\nu: a:b\nv: --\n",
    "# a comment\na: 1\n  # indented comment\n\nb:\n# between\n  c: 2\n",
    "list:\n  - a\n  - 'b'\n  - \"c\"\n  - 1\n  - -2\n  - 2020-01-01\nafter: x\n",
    "r:\n  - t: 1\n    p:\n      n: x\n      d: y\n"
    "    i:\n      - u: z\n        w: 1\n  - t: 2\nz: 0\n",
    "m:\n    deep:\n        deeper: 1\n    back: 2\nn: 3\n",
    "s:\n    -   k: 1\n        j: 2\n    - x\n",
    "a:\nb:\n  c:\nd: 1\n",
    'trailing: plain   \nquoted: "x"   \n',
    "key_with_digits_1: x\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_common_shapes_are_accepted_exactly(text: str) -> None:
    assert exact_or_declined(text)


DECLINED = [
    "",
    "# only a comment\n",
    "just a string\n",
    "- a\n- b\n",
    "  a: 1\n",
    "a: [1, 2]\n",
    "a: {b: 1}\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  text\n",
    "a: >\n  text\n",
    "a: one\n  two\n",
    'a: "one\n  two"\n',
    "a: 'one\n  two'\n",
    "a: b: c\n",
    "a: b #comment\n",
    'a: "b" # comment\n',
    "a: b:\n",
    "a:\n- b\n",
    "a:\n  - b\n  c: 1\n",
    "a:\n  b: 1\n c: 2\n",
    "a: 1\na: 2\n",
    "true: 1\n",
    "null: 1\n",
    "On: 1\n",
    "a: 010\nb: 0x1F\nc: 1_000\nd: 1:20\ne: +1\nf: 1e3\ng: .inf\nh: .NaN\n",
    "a: 1.5e+3\n",
    "a: <<\n",
    "a: =\n",
    "a: 2021-13-45\n",
    "a: 2021-02-30T00:00:00Z\n",
    "a: 2021-12-15T25:00:00Z\n",
    "a: 2021-12-15T18:10:00+24:00\n",
    'a: "\\q"\n',
    'a: "\\\'"\n',
    'a: "\\ud800"\n',
    'a: "\\U00110000"\n',
    "a: b\tc\n",
    "a:\tb\n",
    "a: b\r\nc: d\n",
    "a: b\x85c\n",
    "a: b\u2028c\n",
    "a: \ufeffb\n",
    "a: b\x7f\n",
    "a: -\n",
    "a: - b\n",
    "a: ? b\n",
    "a: :b\n",
    "a: %b\n",
    "a: @b\n",
    "a: `b\n",
    "l:\n  -\n  - b\n",
    "l:\n  - - b\n",
    "---\na: 1\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\n...\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: " + "9" * 5000 + "\n",
    "k" * 200 + ": 1\n",
    "a:" + "\n".join(f"{' ' * (i + 1)}k{i}:" for i in range(40)) + " 1\n",
]


@pytest.mark.parametrize("text", DECLINED)
def test_everything_else_is_declined(text: str) -> None:
    assert not exact_or_declined(text)


# Fragments that change what YAML means: indicators, quoting, escapes, resolver edge
# cases, odd timestamps, indentation and characters libyaml treats specially.
SNIPPETS = [
    ": ", ":", " #", "#", "- ", "-", '"', "'", "''", "\\", '\\"', "\\x41", "\\u00e9", "\\q",
    "\\U0001F680", "\\ud800", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!", "|", ">",
    "%", "@", "`", "?", "? ", "\t", "\r", "\n", "\n  ", "\n- ", "\n    - ", " ", "   ", "~",
    "null", "Null", "yes", "No", "On", "OFF", "y", "0x1F", "017", "0o17", "1_000", "1:20",
    "190:20:30", ".inf", "-.Inf", ".nan", "1e3", "1.5e+3", "+1", "-0", "0", "3.", "-1.25",
    "2021-01-01", "2021-1-1", "2021-1-1 1:02:03", "2021-12-15T18:10:00.123456789+05:30",
    "2021-13-45", "2021-02-30T00:00:00Z", "2021-12-15 18:10:00 -5", "2021-12-15t18:10:00z",
    "2021-12-15T18:10:00Z", "2021-12-15T18:10:00.5-00:30", "2021-12-15T24:00:00", "---",
    "...", "<<", "=", "\x00", "\x07", "\x85", "\u2028", "\ufeff", "\ufffe", "é", "東京",
    "\U0001f680", "\xa0", "key: value", "\nkey: value", "\n  key: value", "\ndup: 1",
    "\ntitle: again", "&", "*", "\\\n", "\n#", "\n  #",
]  # fmt: skip
ODD_VALUES = [
    '"x"', "'x'", "'it''s'", '"a\\"b"', '""', "''", "~", "", "1", "-1", "1.0", "0.5",
    "2021-12-15", "2021-12-15T18:10:00Z", "2021-12-15 18:10:00.25 +02", "yes", "Off", "x y",
    "x: y", "x #y", "[x]", "{x: y}", "&a x", "*a", "!x y", "|", ">-", "- x", "0o7", "0b11",
    "0x_1", "+.5", "12e3", "'x", '"x', "x'", 'x"', '"\\x4"', '"\\u00e"', "\\n",
]  # fmt: skip


def _mutate(text: str, rng: random.Random) -> str:
    """One random change: a snippet inserted, a value or a line replaced, or indentation moved."""
    lines = text.split("\n")
    row = rng.randrange(len(lines))
    line = lines[row]
    kind = rng.randrange(6)
    if kind == 0:
        at = rng.randrange(len(text) + 1)
        return text[:at] + rng.choice(SNIPPETS) + text[at:]
    if kind == 1 and ": " in line:
        lines[row] = line.split(": ", 1)[0] + ": " + rng.choice(ODD_VALUES + SNIPPETS)
    elif kind == 2:
        lines[row] = " " * rng.randrange(4) + line
    elif kind == 3:
        lines[row] = line[rng.randrange(len(line) + 1) :]
    elif kind == 4:
        lines.insert(row, rng.choice(lines))
    else:
        lines[row] = rng.choice(SNIPPETS + ODD_VALUES)
    return "\n".join(lines)


def test_damaged_documents_are_read_exactly_or_declined(generated: list[str]) -> None:
    rng = random.Random(20240601)
    bases = [_front(path) for path in sorted(SEEDS.glob("*.txt"))] + generated[:40]
    accepted = total = 0
    for _ in range(6000):
        text = rng.choice(bases)
        for _ in range(rng.choice((1, 1, 2, 3))):
            text = _mutate(text, rng)
        accepted += exact_or_declined(text)
        total += 1
    assert accepted > total // 10  # the test only means something if many are accepted


def test_random_scalars_resolve_as_pyyaml_resolves_them() -> None:
    rng = random.Random(99)
    alphabet = "0123456789--::..TtZz++  _eExXoObBnNyYlLuf'\"\\#~!&*,[]{}é"
    for _ in range(20000):
        scalar = "".join(rng.choices(alphabet, k=rng.randrange(1, 12)))
        exact_or_declined(f"key: {scalar}\nlist:\n  - {scalar}\n")
    for _ in range(5000):
        stamp = (
            f"{rng.randrange(10000):04d}-{rng.randrange(15)}-{rng.randrange(35):02d}"
            f"{rng.choice(['T', 't', ' ', '  ', 'x'])}{rng.randrange(26)}:{rng.randrange(61):02d}"
            f":{rng.randrange(61):02d}{rng.choice(['', '.', '.5', '.1234567'])}"
            f"{rng.choice(['', 'Z', 'z', ' Z', '+1', '-05:30', '+23:59', '+24:00', '-00'])}"
        )
        exact_or_declined(f"at: {stamp}\n")
        exact_or_declined(f"at: {stamp[:10]}\n")


def test_yamlload_uses_the_fast_path_and_falls_back(generated: list[str]) -> None:
    value, size = yamlload.load(generated[0])
    assert value == yaml.load(generated[0], Loader=yaml.CSafeLoader)
    assert size == _size(value)
    value, size = yamlload.load("a: &x [1, 2]\nb: *x\n")
    assert value["a"] is value["b"]
    assert size is None
