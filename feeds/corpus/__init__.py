"""The corpus stage: document files to typed `Article`s or `Skip`s with a reason.

`files` finds and safely reads files, `frontmatter` turns bytes into a bounded mapping
(`nesting` bounds its depth), `fields` turns the mapping into an article, `normalize`
cleans each value, `load` runs them over one file or a directory, and `outcome` holds what
they give. It knows nothing of the index or of HTTP.
"""

from feeds.corpus.fields import to_parsed
from feeds.corpus.files import SUFFIXES, Found, scan
from feeds.corpus.frontmatter import parse_front_matter
from feeds.corpus.load import load_corpus, read_document, read_documents
from feeds.corpus.outcome import CorpusError, LoadOptions, LoadReport, Parsed, Skip

# What a file parses to is pinned by tests/fixtures/corpus_golden.json: any change of an
# Article, repair or skip reason bumps this number (and the golden file, `python -m
# tests.golden --write`), so stored parses can tell they are stale without reading source.
PARSER_VERSION = 1

__all__ = [
    "PARSER_VERSION",
    "SUFFIXES",
    "CorpusError",
    "Found",
    "LoadOptions",
    "LoadReport",
    "Parsed",
    "Skip",
    "load_corpus",
    "parse_front_matter",
    "read_document",
    "read_documents",
    "scan",
    "to_parsed",
]
