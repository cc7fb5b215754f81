"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

Queues: ``deadlines`` (the scanner), ``notices`` (email fan-out), ``default`` (everything else).
Beat runs periodic work only as "what is due now?" queries, so a missed tick or a second beat is
harmless; no task is scheduled with a long ETA or countdown.
"""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("breachdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = "default"
app.conf.beat_schedule = {
    "record-worker-heartbeat": {
        "task": "incidents.tasks.record_worker_heartbeat",
        "schedule": 30.0,
    },
    "verify-audit-trail": {
        "task": "incidents.tasks.verify_audit_trail",
        "schedule": crontab(minute=17),
    },
}
app.autodiscover_tasks()
