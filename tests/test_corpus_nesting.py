"""The nesting bound (feeds/corpus/nesting.py): measured on the text, before yaml-rs.

yaml-rs recurses on block nesting (it dies of a stack overflow) and refuses deep flow
nesting in a message that quotes the text; these tests pin both, and that the bound
gives its own reason for each, at exactly 64 levels, quickly, whatever hides around it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml_rs

from feeds.corpus import LoadOptions, parse_front_matter
from feeds.corpus.frontmatter import YAML_OPTIONS
from feeds.corpus.nesting import MAX_DEPTH, TOO_DEEP, _Measure, check_nesting
from feeds.corpus.normalize import Unusable
from tests import generate as corpusgen
from tests.support import SEEDS, document

SECRET = "c2VjcmV0LXRva2VuLW5ldmVyLXNob3du"


def too_deep(front: str) -> bool:
    try:
        check_nesting(front)
    except Unusable as error:
        assert str(error) == TOO_DEEP
        return True
    return False


def nested(levels: int) -> dict[str, str]:
    """Front matter `levels` deep in each way YAML nests (the top mapping is one level)."""
    inner = levels - 1
    return {
        "flow sequences": "x: " + "[" * inner + "]" * inner,
        "flow mappings": "x: " + "{a: " * inner + "1" + "}" * inner,
        "block sequences on one line": "x:\n" + "- " * inner + "1",
        "block sequences by lines": "x:\n" + "".join(" " * (2 * i) + "- \n" for i in range(inner)),
        "block mappings by indentation": "".join(" " * i + f"k{i}:\n" for i in range(levels)),
        "compact sequences": "".join(f"{' ' * i}k:\n{' ' * i}- \n" for i in range(0, 64, 2))
        + (" " * 64 + "z: 1\n") * (levels - 64),
        "flow in block": "x:\n" + "- " * 30 + "[" * (inner - 30) + "]" * (inner - 30),
        "tagged flow": "x: !!seq " + "[" * inner + "]" * inner,
    }


@pytest.mark.parametrize("case", nested(MAX_DEPTH))
def test_64_levels_pass_and_65_are_refused(case: str) -> None:
    allowed, refused = nested(MAX_DEPTH)[case], nested(MAX_DEPTH + 1)[case]
    assert not too_deep(allowed)
    assert too_deep(refused)
    assert depth(yaml_rs.loads(allowed, **YAML_OPTIONS)) == MAX_DEPTH  # what was measured
    assert depth(yaml_rs.loads(refused, **YAML_OPTIONS)) == MAX_DEPTH + 1


# Brackets, dashes and indentation that are text: none of them nests.
TEXT = {
    "literal block": "x: |\n" + "  [[[[{{{{ - - - -\n" * 40 + "y: 1\n",
    "folded block, indented": "- k: >-\n" + "      - - - - [[[[\n" * 40 + "- z\n",
    "quoted": "x: '" + "[" * 100 + "'\ny: \"" + "{" * 100 + "\\\" [\"\nz: 'it''s [[['\n",
    "plain": "x: a " + "[" * 100 + "\n  [[[[[[[[[[[[[[[[[[[[\ny: 1\n",
    "comments": "x: 1 # " + "[" * 100 + "\n# " + "{" * 100 + "\n",
    "wide quoted": "x:\n" + " " * 40 + '"' + "- [" * 40 + '"\n',
}


@pytest.mark.parametrize("case", TEXT)
def test_text_that_looks_nested_is_not_counted(case: str) -> None:
    assert not too_deep(TEXT[case])
    assert depth(yaml_rs.loads(TEXT[case], **YAML_OPTIONS)) <= 3


# Nesting behind something that looks like text or a quote: still measured.
HIDDEN = {
    "after a plain continuation holding a bracket": "x: text\n  [\ndeep:\n" + "- " * 100,
    "after a colon in a flow scalar": "x: [a:'b]\ny:\n" + "- " * 100,
    "after an apostrophe in a flow scalar": "x: [don't, " + "[" * 70 + "]" * 70 + "]",
    "after a JSON-like key": 'x: {"a":' + "[" * 70 + "]" * 70 + "}",
    "after a block scalar": "x: |\n  text\ny:\n" + "- " * 100,
    "after a multi-line quote": "x: 'a\n  [[[ b'\ny:\n" + "- " * 100,
}


@pytest.mark.parametrize("case", HIDDEN)
def test_nesting_after_text_is_still_measured(case: str) -> None:
    assert too_deep(HIDDEN[case])


def test_the_measure_is_the_parsed_depth_on_real_documents(tmp_path: Path) -> None:
    """Forced past the cheap test, the pass counts what yaml-rs builds, document by document."""
    paths = [*corpusgen.write_corpus(tmp_path, 300, seed=5), *SEEDS.glob("*.txt")]
    for path in paths:
        front = path.read_text(encoding="utf-8").split("---\n")[1]
        assert measured(front) == depth(yaml_rs.loads(front, **YAML_OPTIONS)), path.name


# Run in a child: without the bound the parser's stack overflow kills the process. The
# child counts the collections the measure opened (`check` runs once for each) and whether
# yaml-rs was asked at all: "quick" is the pass stopping at the first collection past the
# bound, with no parse, whatever the machine's speed (bench timing is not a test's job).
_CHILD = """
import json, sys
import yaml_rs
from feeds.corpus import parse_front_matter
from feeds.corpus.nesting import _Measure
from feeds.corpus.normalize import Unusable
opened, parsed = [], []
check = _Measure.check
def counted(self):
    opened.append(len(self.block) + self.flow)
    check(self)
_Measure.check = counted
loads = yaml_rs.loads
def recorded(*args, **kwargs):
    parsed.append(True)
    return loads(*args, **kwargs)
yaml_rs.loads = recorded
try:
    parse_front_matter(sys.stdin.buffer.read())
    reason = None
except Unusable as error:
    reason = str(error)
print(json.dumps([reason, opened, bool(parsed)]))
"""

HOSTILE = {
    "10,000 flow sequences": "x: " + "[" * 10_000 + "]" * 10_000,
    "10,000 flow mappings, unclosed": "x: " + "{a: " * 10_000,
    "200,000 block sequences": "x:\n" + "- " * 200_000 + "1",
    "1,400 mappings by indentation": "".join(" " * i + f"k{i}:\n" for i in range(1400)),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_nesting_is_a_quick_skip_not_a_crash(case: str) -> None:
    raw = f'---\nsecured: "{SECRET}"\n{HOSTILE[case]}\n---\n'.encode()
    assert len(raw) <= LoadOptions().max_file_bytes
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], input=raw, capture_output=True, check=False
    )
    assert child.returncode == 0, child.stderr.decode()[-500:]
    reason, opened, parsed = json.loads(child.stdout)
    assert reason == TOO_DEEP
    assert not parsed, "refused on the text: yaml-rs never saw it"
    # one collection a level deeper each time, and not one past the first over the bound
    assert opened == list(range(1, MAX_DEPTH + 2)), f"{len(opened)} collections opened"


def test_yaml_rs_alone_dies_on_deep_block_nesting() -> None:
    """Why the bound comes first: yaml-rs 0.1 overflows its stack (a later version that
    stops this makes the bound a second line of defence, not the only one)."""
    child = subprocess.run(
        [sys.executable, "-c", "import yaml_rs; yaml_rs.loads('x:\\n' + '- ' * 200_000 + '1')"],
        capture_output=True,
        check=False,
    )
    assert child.returncode in (-signal.SIGSEGV, -signal.SIGABRT)


def test_yaml_rs_alone_refuses_deep_flow_in_words_that_quote_the_text() -> None:
    text = f'secured: "{SECRET}"\nx: ' + "[" * 1000
    with pytest.raises(yaml_rs.YAMLDecodeError) as raised:
        yaml_rs.loads(text, **YAML_OPTIONS)
    assert "[[[[" in str(raised.value)  # its message shows the document
    with pytest.raises(Unusable) as refused:
        parse_front_matter(f"---\n{text}\n---\n".encode())
    assert str(refused.value) == TOO_DEEP


def test_every_parser_failure_is_a_skip_that_quotes_nothing(monkeypatch: Any) -> None:
    """A Rust panic reaches Python as a BaseException: it is a skip like any other."""

    class PanicException(BaseException):
        pass

    def panic(text: str, **options: Any) -> Any:
        raise PanicException(f"called `Option::unwrap()` on {text}")

    monkeypatch.setattr(yaml_rs, "loads", panic)
    with pytest.raises(Unusable) as refused:
        parse_front_matter(document().replace("---\n", f'---\nsecured: "{SECRET}"\n', 1).encode())
    assert str(refused.value) == "malformed YAML: a value its tag cannot hold"


def depth(value: Any) -> int:
    """How deep a parsed value nests, as a parser's events count it (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
            if isinstance(node, dict):
                stack.extend((child, level + 1) for child in node.values())
    return deepest


def measured(front: str) -> int:
    """The deepest level the pass reaches, with no limit."""

    class Deepest(_Measure):
        peak = 0

        def check(self) -> None:
            self.peak = max(self.peak, len(self.block) + self.flow)

    measure = Deepest()
    measure.text(front)
    return measure.peak
