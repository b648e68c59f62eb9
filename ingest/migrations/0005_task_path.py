"""ingest/jobs.py became the package ingest/jobs/: django-tasks' records name the ingest
task, and the exception of a task given up on, by their old paths, which a worker can no
longer import (the exception's never existed: ingest.jobs.supervision.WorkerLost does)."""

from django.db import migrations

PATHS = [
    ("task_path", "ingest.jobs.run_ingest_job", "ingest.jobs.runner.run_ingest_job"),
    ("exception_class_path", "ingest.jobs.WorkerLost", "ingest.jobs.supervision.WorkerLost"),
]


def move(forwards: bool):
    def run(apps, schema_editor):
        tasks = apps.get_model("django_tasks_database", "DBTaskResult")
        for field, old, new in PATHS:
            was, now = (old, new) if forwards else (new, old)
            tasks.objects.filter(**{field: was}).update(**{field: now})

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0004_job_requester"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(move(True), move(False), elidable=True)]
