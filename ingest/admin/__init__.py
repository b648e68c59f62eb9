"""ingest's admin: the documents (document_admin.py: registry.Document's, kept here
because its add, ask and delete use ingest's services) and the background jobs
(job_admin.py). Django's autodiscovery imports this."""

from ingest.admin import document_admin, job_admin

__all__ = ["document_admin", "job_admin"]
