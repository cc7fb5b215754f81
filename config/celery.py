"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

Queues: ``deadlines`` (the scanner), ``notices`` (email fan-out), ``default`` (everything else).
Beat runs periodic work only as "what is due now?" queries, so a missed tick or a second beat is
harmless; no task is scheduled with a long ETA or countdown.
"""

import importlib
import logging
import os
from typing import Any

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("breachdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = "default"
app.conf.beat_schedule = {
    "scan-deadlines": {
        "task": "notifications.tasks.scan_deadlines",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "scan-action-item-reminders": {
        "task": "postmortems.tasks.scan_action_item_reminders",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "record-worker-heartbeat": {
        "task": "incidents.tasks.record_worker_heartbeat",
        "schedule": 30.0,
    },
    "refresh-metrics": {
        "task": "dashboard.tasks.refresh_metrics",
        "schedule": 60.0 * int(os.environ.get("METRICS_REFRESH_MINUTES", "5")),
        "options": {"expires": 240},
    },
    "send-outgoing-emails": {
        "task": "incidents.tasks.send_outgoing_emails",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "purge-idempotency-records": {
        "task": "incidents.tasks.purge_idempotency_records",
        "schedule": crontab(minute=41),
    },
    "verify-audit-trail": {
        "task": "incidents.tasks.verify_audit_trail",
        "schedule": crontab(minute=17),
    },
    # Signed checkpoints of every audit chain's head (incidents.checkpoints): a chain that grew
    # gets one; a truncation or a deleted chain after a checkpoint is then caught.
    "checkpoint-audit-trail": {
        "task": "incidents.tasks.checkpoint_audit_trail",
        "schedule": crontab(minute="*/15"),
    },
    # Each customer is asked every CONTACT_CONFIRMATION_DAYS: the daily run asks only those due
    # (a "what is due" query), so a missed day or a restarted beat loses nothing.
    "send-contact-confirmations": {
        "task": "notifications.tasks.send_contact_confirmations",
        "schedule": crontab(hour=6, minute=41),
    },
}
app.conf.task_routes = {
    "notifications.tasks.scan_deadlines": {"queue": "deadlines"},
    "postmortems.tasks.scan_action_item_reminders": {"queue": "deadlines"},
    "notifications.tasks.send_due_deliveries": {"queue": "notices"},
    "notifications.tasks.create_notice_deliveries": {"queue": "notices"},
}
app.autodiscover_tasks()


def enqueue(task: Any, *args: Any) -> bool:
    """Queue ``task`` (a task object, or a registered task's name such as
    ``"notifications.tasks.send_escalation"``) with ``args`` without ever failing the caller;
    True if the broker took it.

    A name lets a service queue a task of a module above it without importing that module
    (the tasks module imports the services, never the reverse). Under ``task_always_eager``
    (the tests) a named task runs in process like a task object.

    The broker only wakes workers: PostgreSQL holds the work, and the deadline scanner (every
    minute) finds anything whose wake-up message was lost. So a broker that is down must not
    turn a committed declaration into an error page, or make a request wait: one attempt, no
    retries, and a log line. A broker that is down fails at once; one that accepts connections
    and never answers fails within ``CELERY_BROKER_SOCKET_TIMEOUT`` (2 s; connect:
    ``CELERY_BROKER_SOCKET_CONNECT_TIMEOUT``, 1 s) instead of kombu's default minutes (issue 8).
    """
    name = task if isinstance(task, str) else task.name
    try:
        if isinstance(task, str) and name not in app.tasks:
            # Register it (its module may not be imported yet in this process, e.g. a web
            # process or the tests): under task_always_eager an unregistered name would be
            # "sent" to nowhere instead of running.
            importlib.import_module(name.rsplit(".", 1)[0])
        signature = app.signature(name, args=args) if isinstance(task, str) else task.s(*args)
        signature.apply_async(retry=False)
    except Exception:  # noqa: BLE001 - any broker failure is survivable by design
        logging.getLogger("breachdesk.queue").warning(
            "Could not queue %s; the deadline scanner will pick the work up.", name, exc_info=True
        )
        return False
    return True
