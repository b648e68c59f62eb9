"""ingest's admin: the documents (registry.Document, whose add, ask and delete use
ingest's services) and the background jobs. Django's autodiscovery imports this."""

from ingest.admin import documents, jobs

__all__ = ["documents", "jobs"]
