"""What loading a corpus gives: options, one outcome per file, and the report."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from feeds.model import Article
from feeds.settings import Settings


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
class LoadOptions:
    """What to load; `workers` changes only how fast, never the result."""

    include_unpublished: bool = True
    min_quality: float | None = None
    max_file_bytes: int = 1_048_576
    workers: int = 1  # processes parsing documents

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadOptions:
        return cls(
            include_unpublished=settings.include_unpublished,
            min_quality=settings.min_quality,
            max_file_bytes=settings.max_file_bytes,
            workers=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        )

    def key(self) -> str:
        """The options that change the result, for naming an index."""
        return f"{self.include_unpublished}|{self.min_quality!r}|{self.max_file_bytes}"


class CorpusError(RuntimeError):
    """The corpus as a whole cannot be loaded (missing directory, strict mode with skips)."""
