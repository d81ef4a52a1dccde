"""A pure-Python reader for the common front-matter shape, exact or not at all.

Even with libyaml, scanning, composing and resolving a document's few hundred nodes
costs most of a cold start. Nearly every document uses one narrow shape: block mappings
with identifier keys, block sequences, and one-line scalars. Reading that shape line by
line is several times cheaper. Anything outside it (flow collections, anchors, tags,
multi-line or block scalars, unusual escapes or numbers, odd indentation, duplicate
keys, comments after values) raises `Unsure`, and the caller parses the text with
libyaml instead, so the result always equals `yaml.load(text, CSafeLoader)`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import ScalarNode

MAX_DEPTH = 32  # nesting beyond this is never front matter; libyaml handles it
MAX_CACHED = 8192  # distinct plain scalars remembered across documents


class Unsure(Exception):
    """The text may mean something this reader does not model: use libyaml."""


# One line: indentation, an optional `- ` entry, an optional `key:`, then either a
# double-quoted scalar without escapes (its quote mark and text) or the raw rest. The
# rest excludes what libyaml refuses or reads specially (tabs, line breaks other than
# \n, BOMs, control characters, surrogates), so a line holding one does not match at all.
_UNREAD = r"\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\ufeff\ufffe\uffff"
_LINE = re.compile(
    r"^( *)(?:(-)( +|$))?(?:([A-Za-z_][A-Za-z0-9_]{0,127}):(?: +|$))?"
    rf'(?:(")([^"\\{_UNREAD}]*)" *|([^{_UNREAD}]*))$',
    re.M,
)
_DOUBLE = re.compile(r'"((?:[^"\\]|\\.)*)" *')
_SINGLE = re.compile(r"'((?:[^']|'')*)' *")
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
# Characters that cannot start a plain scalar, or start one this reader does not model.
_NOT_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[-+][0-9]{2}:[0-9]{2})?"
)
_WORDS: dict[str, Any] = {
    **dict.fromkeys(["", "~", "null", "Null", "NULL"]),
    **dict.fromkeys(["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"], True),
    **dict.fromkeys(["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"], False),
}
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = yaml.CSafeLoader.yaml_implicit_resolvers
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_UTC = datetime.UTC
_ZONES: dict[str, datetime.tzinfo] = {"Z": _UTC}
_CACHE: dict[str, Any] = {}
_KEYS: set[str] = set()
_MISSING = object()


def load(text: str) -> tuple[dict[str, Any], int]:
    """The front matter's mapping and size (values in all its mappings and sequences).

    Raises `Unsure` unless the value is certainly what `yaml.load(text, CSafeLoader)`
    returns; never raises anything else.
    """
    found = _LINE.findall(text)
    if len(found) != text.count("\n") + 1:
        raise Unsure  # some line holds a character that needs libyaml
    lines = [line for line in found if line[1] or line[3] or line[4] or _is_content(line[6])]
    if not lines or lines[0][0] or lines[0][1] or not lines[0][3]:
        raise Unsure  # only a top-level block mapping at column 0
    reader = _Reader(lines)
    try:
        value, end = reader.mapping(0, "", 0)
    except (ValueError, OverflowError, RecursionError):
        raise Unsure from None  # e.g. a date out of range: libyaml reports it properly
    if end != len(lines):
        raise Unsure
    return value, reader.size


class _Reader:
    """Builds values from the significant lines: (indent, dash, gap, key, quote, text, rest).

    Indentation stays a string of spaces: for those, comparing strings compares lengths.
    """

    __slots__ = ("lines", "size")

    def __init__(self, lines: list[tuple[str, str, str, str, str, str, str]]) -> None:
        self.lines = lines
        self.size = 0

    def mapping(self, index: int, column: str, depth: int) -> tuple[dict[str, Any], int]:
        """The block mapping whose first key, on line `index`, is at `column`."""
        lines, count, result = self.lines, len(self.lines), {}
        _indent, _dash, _gap, key, quote, text, rest = lines[index]
        while True:
            if key in result or (key not in _KEYS and not _string_key(key)):
                raise Unsure  # PyYAML keeps a duplicate's last value at the first's place
            index += 1
            if quote:
                result[key] = text
            elif rest:
                value = _CACHE.get(rest, _MISSING)
                result[key] = scalar(rest) if value is _MISSING else value
            else:
                result[key], index = self.nested(index, column, depth)
            if index == count:
                break
            indent, dash, _gap, key, quote, text, rest = lines[index]
            if indent != column:
                if indent < column:
                    break
                raise Unsure
            if dash or not key:
                raise Unsure
        self.size += len(result)
        return result, index

    def sequence(self, index: int, column: str, depth: int) -> tuple[list[Any], int]:
        """The block sequence whose first `- ` entry, on line `index`, is at `column`."""
        lines, count, result = self.lines, len(self.lines), []
        _indent, dash, gap, key, quote, text, rest = lines[index]
        while True:
            if key:
                item, index = self.mapping(index, f"{column} {gap}", depth + 1)
            elif quote:
                item, index = text, index + 1
            elif rest:
                item, index = scalar(rest), index + 1
            else:
                raise Unsure  # an empty entry, or one whose value starts on the next line
            result.append(item)
            if index == count:
                break
            indent, dash, gap, key, quote, text, rest = lines[index]
            if indent != column:
                if indent < column:
                    break
                raise Unsure
            if not dash:
                raise Unsure
        self.size += len(result)
        return result, index

    def nested(self, index: int, column: str, depth: int) -> tuple[Any, int]:
        """The value of a `key:` with nothing after it, at `column`: a block or null."""
        if index == len(self.lines):
            return None, index
        indent, dash, _gap, key, *_ = self.lines[index]
        if indent <= column:
            return None, index  # (a sequence not indented under its key fails in `mapping`)
        if depth >= MAX_DEPTH:
            raise Unsure
        if dash:
            return self.sequence(index, indent, depth + 1)
        if key:
            return self.mapping(index, indent, depth + 1)
        raise Unsure  # a scalar on the following lines


def _is_content(rest: str) -> bool:
    """Whether the rest of a line without key or entry is more than blanks or a comment."""
    return bool(rest) and rest[0] != "#"


def _string_key(key: str) -> bool:
    """Whether a key resolves to a string (not `null`, `yes`, `on`...); remembered if so."""
    if _plain(key) is not key:
        return False
    if len(_KEYS) >= MAX_CACHED:
        _KEYS.clear()
    _KEYS.add(key)
    return True


def scalar(rest: str) -> Any:
    """The value of a scalar that fills the rest of a line (quoted or plain)."""
    first = rest[0]
    if first == '"':
        return _double_quoted(rest)
    if first == "'":
        return _single_quoted(rest)
    value = _CACHE.get(rest, _MISSING)
    if value is not _MISSING:
        return value
    text = rest.rstrip(" ")
    if first in _NOT_PLAIN_START and not (first == "-" and len(text) > 1 and text[1] != " "):
        raise Unsure
    if ": " in text or " #" in text or text[-1] == ":":
        raise Unsure
    value = _plain(text)
    if type(value) is not datetime.datetime:  # nearly all distinct: not worth remembering
        if len(_CACHE) >= MAX_CACHED:
            _CACHE.clear()
        _CACHE[rest] = value
    return value


def _double_quoted(rest: str) -> str:
    end = rest.find('"', 1)
    body = rest[1:end]
    if end > 0 and "\\" not in body:
        if rest[end + 1 :].strip(" "):
            raise Unsure
        return body
    match = _DOUBLE.fullmatch(rest)
    if match is None:
        raise Unsure  # unclosed (multi-line) or followed by something
    return _ESCAPE.sub(_unescape, match[1])


def _unescape(match: re.Match[str]) -> str:
    """One backslash escape, as libyaml decodes it; unknown or invalid ones are refused."""
    code = match[1] or match[2] or match[3]
    if code is None:
        try:
            return _ESCAPES[match[4]]
        except KeyError:
            raise Unsure from None
    value = int(code, 16)
    if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
        raise Unsure
    return chr(value)


def _single_quoted(rest: str) -> str:
    match = _SINGLE.fullmatch(rest)
    if match is None:
        raise Unsure
    return match[1].replace("''", "'")


def _plain(text: str) -> Any:
    """A plain scalar resolved as PyYAML's YAML 1.1 resolver and safe constructor do."""
    if text in _WORDS:
        return _WORDS[text]
    if text[0] in "-0123456789":
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        match = _DATETIME.fullmatch(text)
        if match:
            return _datetime(match)
        match = _DATE.fullmatch(text)
        if match:
            return datetime.date(int(match[1]), int(match[2]), int(match[3]))
    for tag, regexp in _RESOLVERS.get(text[0], []) + _RESOLVERS.get(None, []):  # type: ignore[call-overload]
        if regexp.match(text):
            if tag == _TIMESTAMP_TAG:
                return _pyyaml_timestamp(text)
            raise Unsure  # octal, hex, exponents, `.inf`, sexagesimal, merge keys...
    return text


def _datetime(match: re.Match[str]) -> datetime.datetime:
    """The common `2021-12-15T18:10:00.250+02:00` form, built as PyYAML builds it."""
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    return datetime.datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int(fraction.ljust(6, "0")) if fraction else 0,
        _zone(zone) if zone else None,
    )


def _zone(text: str) -> datetime.tzinfo:
    """`Z` or `±HH:MM` as the fixed-offset timezone PyYAML makes, shared between values."""
    zone = _ZONES.get(text)
    if zone is None:
        delta = datetime.timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
        zone = datetime.timezone(-delta if text[0] == "-" else delta)
        _ZONES[text] = zone
    return zone


def _pyyaml_timestamp(text: str) -> Any:
    """Rarer timestamp spellings, built by PyYAML's own constructor."""
    return _construct_timestamp()(ScalarNode(_TIMESTAMP_TAG, text))


_CONSTRUCTOR: list[Callable[[ScalarNode], Any]] = []


def _construct_timestamp() -> Callable[[ScalarNode], Any]:
    if not _CONSTRUCTOR:
        _CONSTRUCTOR.append(yaml.constructor.SafeConstructor().construct_yaml_timestamp)
    return _CONSTRUCTOR[0]
