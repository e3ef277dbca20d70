"""Persistence shared by the API and the workers: SQLAlchemy models and sessions."""

from dljobs.db.models import (
    Artifact,
    ArtifactChunk,
    Base,
    Dataset,
    DiagnosticEvent,
    Job,
    JobEvent,
    MetricPoint,
)
from dljobs.db.session import make_engine, session_factory

__all__ = [
    "Artifact",
    "ArtifactChunk",
    "Base",
    "Dataset",
    "DiagnosticEvent",
    "Job",
    "JobEvent",
    "MetricPoint",
    "make_engine",
    "session_factory",
]
