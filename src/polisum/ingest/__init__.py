"""Ingest: bring an index up to date with a folder (see polisum.ingest.pipeline).

The names below are imported on first use (PEP 562, as in ``polisum``): ``polisum.ingest.scan``
or ``report`` alone (the CLI, the evaluation) must not load every document parser."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polisum._lazy import lazy_exports

_EXPORTS = {
    "Engine": "polisum.ingest.engine",
    "LocalEngine": "polisum.ingest.engine",
    "Ingestor": "polisum.ingest.pipeline",
    "cached_summaries": "polisum.ingest.pipeline",
    "crashpoint": "polisum.ingest.pipeline",
    "FileFailure": "polisum.ingest.report",
    "IngestReport": "polisum.ingest.report",
    "source_name": "polisum.ingest.scan",
    "FileJob": "polisum.ingest.stages",
    "ParsedFile": "polisum.ingest.stages",
    "ParseSettings": "polisum.ingest.stages",
    "parse_file": "polisum.ingest.stages",
}
__all__ = [
    "Engine",
    "FileFailure",
    "FileJob",
    "IngestReport",
    "Ingestor",
    "LocalEngine",
    "ParseSettings",
    "ParsedFile",
    "cached_summaries",
    "crashpoint",
    "parse_file",
    "source_name",
]

if TYPE_CHECKING:
    from polisum.ingest.engine import Engine, LocalEngine
    from polisum.ingest.pipeline import Ingestor, cached_summaries, crashpoint
    from polisum.ingest.report import FileFailure, IngestReport
    from polisum.ingest.scan import source_name
    from polisum.ingest.stages import FileJob, ParsedFile, ParseSettings, parse_file


__getattr__ = lazy_exports(__name__, _EXPORTS)
