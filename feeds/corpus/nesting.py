"""How deep front matter nests, measured on its text before any parser builds it.

yaml-rs builds nested values recursively: 100,000 `- ` on one line overflow its stack
and kill the process. So the depth is measured here, by one pass over the text that
never recurses and stops at the first collection past `MAX_DEPTH`, whatever the YAML
library or its version. The count is the one a parser's event stream gives (a mapping
or sequence opened is one level) for every well-formed document; text the parser would
refuse anyway may count a level more or less.
"""

from __future__ import annotations

import re

from feeds.corpus.normalize import Unusable

MAX_DEPTH = 64  # nesting of mappings and sequences; real front matter needs about 6

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"

# Ordinary text passes when it holds at most _FEW_BRACKETS brackets and no line starts with
# _WIDE_PREFIX characters that could be indentation or `- `, `? `, `: ` indicators.

_FEW_BRACKETS = 16

_WIDE_PREFIX = (MAX_DEPTH - _FEW_BRACKETS) // 2 - 1

# A wide line prefix at the start or after a newline: a leading `\n` lets the regex engine
# skip to each newline, where `^` with re.M tried every position of the text.
_WIDE_FIRST_LINE = re.compile(rf"[ \t?:-]{{{_WIDE_PREFIX}}}")
_WIDE_LATER_LINE = re.compile(rf"\n[ \t?:-]{{{_WIDE_PREFIX}}}")

# A block scalar header (`|`, `>-`, `|2+`): the lines indented below it are text.
_BLOCK_SCALAR = re.compile(r"[|>][1-9+-]{0,2}(?:[ \t]+#.*|[ \t]*)$")

_SPACE = " \t"

# Where the pass must look next, so that text is skipped at the regex engine's speed: the
# end of a quoted scalar; in a plain scalar, a key's `:` or a comment's `#`; between the
# nodes of a flow collection, its brackets, commas, colons and comments.
_QUOTE_END = {'"': re.compile(r'["\\]'), "'": re.compile("'")}
_PLAIN_STOP = re.compile("[:#]")
_FLOW_STOP = re.compile(r"[\[\]{},:#]")
_PROPERTY_END = " \t,[]{}"  # where a tag (`!!str`) or an anchor (`&a`) ends


def _after_json(line: str, index: int) -> bool:
    """Whether the `:` before `index` follows a quoted scalar or a flow collection, where
    flow context needs no space after it (`{"a":1}`)."""
    return index >= 2 and line[index - 2] in "\"']}"


def has_wide_line(front: str) -> bool:
    """Whether a line starts with _WIDE_PREFIX indentation or indicator characters."""
    return bool(_WIDE_FIRST_LINE.match(front) or _WIDE_LATER_LINE.search(front))


def check_nesting(front: str) -> None:
    """Raise Unusable when the front matter nests deeper than MAX_DEPTH.

    Ordinary text passes a cheap test: block collections nest only at strictly growing
    columns (two levels per column at most, a mapping and its compact sequence), each
    line's structure starts within its leading indentation and `- `, `? `, `: `
    indicators, and a flow collection needs a `[` or `{`. So with few brackets and no
    wide line prefix the depth is within the limit; only other text is measured.
    """
    if front.count("[") + front.count("{") <= _FEW_BRACKETS and not has_wide_line(front):
        return
    _Measure().text(front)


class _Measure:
    """One pass over the lines, holding only what is open where the pass has come to."""

    def __init__(self) -> None:
        self.block: list[tuple[int, bool]] = []  # open block collections: (column, is_sequence)
        self.flow = 0  # open flow collections (`[`, `{`), which may span lines
        self.quote = ""  # the quote character of an open quoted scalar, which may span lines
        self.node = True  # at the start of a node: a quote or bracket here opens one
        self.plain = False  # the line so far ends inside a plain scalar
        self.text_below: int | None = None  # lines indented deeper than this are scalar text

    def text(self, front: str) -> None:
        for line in front.split("\n"):
            if self.text_below is not None:
                stripped = line.lstrip(" ")
                if not stripped.strip() or len(line) - len(stripped) > self.text_below:
                    continue  # a block scalar's line, or a plain scalar's continuation
                self.text_below = None
            if self.flow or self.quote:
                self.inline(line, 0, key=False)
            else:
                self.block_line(line)

    def block_line(self, line: str) -> None:
        """A line in block context: its indentation closes collections, its indicators and
        implicit key open them, then its value is read inline."""
        indent = len(line) - len(line.lstrip(" "))
        if not line[indent:].strip() or line[indent] == "#":
            return
        while self.block and self.block[-1][0] > indent:
            self.block.pop()
        column, end = indent, len(line)
        while line[column] in "-?:" and (column + 1 == end or line[column + 1] in _SPACE):
            self.open_block(column, sequence=line[column] == "-")
            column += 1
            while column < end and line[column] in _SPACE:
                column += 1
            if column == end:
                return  # the node starts on a later line
        self.node, self.plain = True, False
        value = self.inline(line, column, key=True)
        if value >= 0:  # `column` starts an implicit key: a mapping opens there
            self.open_block(column, sequence=False)
            self.node, self.plain = True, False
            self.inline(line, value, key=False)
        if not self.flow and not self.quote and self.plain:
            self.text_below = self.block[-1][0] if self.block else -1

    def open_block(self, column: int, sequence: bool) -> None:
        """A block collection entry at `column`: a sibling, or a collection one level deeper."""
        if self.block and self.block[-1][0] == column:
            if self.block[-1][1] == sequence:
                return
            if self.block[-1][1]:  # a key after a compact sequence ends the sequence
                self.block.pop()
                if self.block and self.block[-1] == (column, False):
                    return
        self.block.append((column, sequence))
        self.check()

    def inline(self, line: str, start: int, key: bool) -> int:
        """Quotes, flow brackets, comments and block scalar headers from `start` on.

        With `key`, stop after the first `: ` outside any flow collection and return where
        the value starts (-1 when the line holds no implicit key).
        """
        index, end = start, len(line)
        while index < end:
            if self.quote or not self.node:
                index = self.next_stop(line, index)
                if index < 0:
                    break
            char = line[index]
            index += 1
            if self.quote:
                if char == "\\" and self.quote == '"':
                    index += 1
                elif char == self.quote:
                    if char == "'" and line.startswith("'", index):
                        index += 1  # '' is a quote inside single quotes
                    else:
                        self.quote = ""
            elif char in _SPACE:
                continue
            elif char == "#" and (index == 1 or line[index - 2] in _SPACE):
                break  # a comment
            elif char == ":" and (
                index == end or line[index] in _SPACE or (self.flow and _after_json(line, index))
            ):
                if key and not self.flow:
                    return index
                self.node, self.plain = True, False
            elif not self.node:
                if char in "[{" and self.flow:
                    self.open_flow()
                elif char in "]}" and self.flow:
                    self.flow -= 1
                elif char == "," and self.flow:
                    self.node = True
            elif char in "\"'":
                self.quote, self.node = char, False
            elif char in "[{":
                self.open_flow()
            elif char in "]}" and self.flow:
                self.flow, self.node = self.flow - 1, False
            elif char in "!&":  # a tag or an anchor: the node starts after it
                while index < end and line[index] not in _PROPERTY_END:
                    index += 1
            elif char in "|>" and not self.flow and _BLOCK_SCALAR.match(line, index - 1):
                self.text_below = self.block[-1][0] if self.block else -1
                self.node = False
                break
            elif char == "," and self.flow:
                continue  # an empty entry: the next node starts after it
            elif char not in "-?" or (index < end and line[index] not in _SPACE):
                self.node, self.plain = False, not self.flow  # a plain scalar starts
        return -1

    def next_stop(self, line: str, index: int) -> int:
        """Where, from `index` inside a quoted or plain scalar, the next character that can
        matter is (-1: none on this line)."""
        if self.quote:
            stop = _QUOTE_END[self.quote].search(line, index)
        else:
            stop = (_FLOW_STOP if self.flow else _PLAIN_STOP).search(line, index)
        return -1 if stop is None else stop.start()

    def open_flow(self) -> None:
        """A `[` or `{` where a node starts, or inside a flow collection."""
        self.flow += 1
        self.node = True
        self.check()

    def check(self) -> None:
        if len(self.block) + self.flow > MAX_DEPTH:
            raise Unusable(TOO_DEEP)
