"""The lean YAML constructor gives exactly what `yaml.load` with libyaml gives."""

from __future__ import annotations

import pytest
import yaml

from feeds import yamlload

DOCUMENTS = [
    "title: plain\nquoted: 'single'\ndouble: \"two\\nlines\"\n",
    "at: 2021-12-15T18:10:00Z\nday: 2021-12-15\nspaced: 2021-12-15 18:10:00\n",
    "zone: 2021-12-15T20:10:00+02:00\nbad: 2021-13-45\n",
    "a: true\nb: false\nc: yes\nd: no\ne: on\nf: off\ng: ~\nh: null\ni:\n",
    "octal: 010\nhex: 0x1f\nsexa: 1:20\nunder: 1_000\nfloat: 1.5e3\ninf: .inf\n",
    "list: [1, two, 3.0]\nnested:\n  - a: 1\n    b: [x, {y: z}]\n",
    "a: &x [1, 2]\nb: *x\n",
    "base: &b {k: 1}\nmerged:\n  <<: *b\n  j: 2\n",
    "bin: !!binary aGVsbG8=\nset: !!set {a, b}\nstr: !!str 123\n",
    "? [complex, key]\n: value\n",
    "1: int key\n2021-01-01: date key\ntrue: bool key\n",
    "dup: 1\ndup: 2\n",
    "just a string\n",
    "- a\n- b\n",
    "",
    "deep: " + "[" * 400 + "]" * 400 + "\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_value_as_pyyaml(text: str) -> None:
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, ValueError) as error:
        with pytest.raises(type(error)) as raised:
            yamlload.load(text)
        assert str(raised.value) == str(error)
        return
    value, size = yamlload.load(text)
    assert value == expected
    assert repr(value) == repr(expected)  # same types, same order
    if size is not None:
        assert size == _size(expected)


def test_aliases_stay_shared_for_the_alias_check() -> None:
    value, size = yamlload.load("a: &x [1, 2]\nb: *x\n")
    assert value["a"] is value["b"]
    assert size is None


def test_errors_are_pyyaml_errors() -> None:
    with pytest.raises(yaml.MarkedYAMLError):
        yamlload.load("title: [unclosed\n")


def _size(value: object) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_size(v) for v in value)
    return 0
