"""Ingest: bring an index up to date with a folder (see polisum.ingest.pipeline)."""

from polisum.ingest.engine import Engine, LocalEngine
from polisum.ingest.pipeline import Ingestor, cached_summaries, crashpoint
from polisum.ingest.report import FileFailure, IngestReport
from polisum.ingest.scan import source_name
from polisum.ingest.stages import FileJob, ParsedFile, ParseSettings, parse_file

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
