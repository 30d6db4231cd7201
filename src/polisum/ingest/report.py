"""What an ingest did, file by file and in total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FileFailure:
    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason}


@dataclass
class IngestReport:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    ignored: int = 0
    skipped: int = 0  # not read at all: links leaving the folder, unreadable folders
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    summaries_updated: int = 0
    publishes: int = 0
    seconds: float = 0.0
    failures: list[FileFailure] = field(default_factory=list)
    # Unchanged files that failed before and were not retried (counted in ``unchanged``).
    failed_before: list[FileFailure] = field(default_factory=list)
    # Files indexed with parts not read (a reader's bound: deep nesting, a page too large to
    # OCR, ...), one entry per warning.
    warnings: list[FileFailure] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return self.new + self.changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {
                "new": self.new,
                "changed": self.changed,
                "unchanged": self.unchanged,
                "failed": self.failed,
                "removed": self.removed,
                "ignored": self.ignored,
                "skipped": self.skipped,
            },
            "chunks": {
                "added": self.chunks_added,
                "removed": self.chunks_removed,
                "total": self.chunks_total,
                "summaries_updated": self.summaries_updated,
            },
            "publishes": self.publishes,
            "seconds": round(self.seconds, 3),
            "failures": [f.to_dict() for f in self.failures],
            "failed_before": [f.to_dict() for f in self.failed_before],
            "warnings": [f.to_dict() for f in self.warnings],
        }
