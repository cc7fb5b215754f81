"""Breachdesk settings: one file, read from the environment.

With no environment set, everything is embedded so that a fresh clone runs at once: SQLite under
``var/``, Celery's filesystem broker under ``var/``, email written to files under ``var/``.
``DATABASE_URL``, ``CELERY_BROKER_URL``, ``EMAIL_URL``, ``SECRET_KEY``, ``DEBUG`` and
``ALLOWED_HOSTS`` switch to production parts. A bad value fails loudly at start-up.
"""

import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BREACHDESK_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# django-environ is untyped: the annotations below give the type checker each setting's type
# wherever ``settings.NAME`` is read.
env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=True)


def _secret_key() -> str:
    """The SECRET_KEY from the environment; in DEBUG, a key generated once into var/."""
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "incidents",
    "triage",
    "notifications",
    "postmortems",
    # The response team's pages across the apps (the due-next board, metrics, customers): it
    # reads every app below it and none of them imports it.
    "dashboard",
]

#: The seam between the lifecycle (``incidents``, the ground floor) and the apps built on it:
#: what each app does at each lifecycle moment, by dotted path, in the order the hooks run
#: (``incidents.lifecycle`` explains the moments and stages and resolves this at start-up).
#: ``incidents`` imports no other app; this table is the one place where they meet.
#: The dates that raise reminders (once due, once overdue) and fill "my work": dotted paths to
#: ``notifications.reminders.ReminderSource`` objects, each defined by the app owning the date.
REMINDER_SOURCES: list[str] = [
    "triage.reminders.RESPONSE_TASKS",
    "notifications.reminders.WITHHOLDING_REVIEWS",
    "postmortems.due_dates.ACTION_ITEMS",
    "postmortems.due_dates.TRAINING_EXPIRY",
]

LIFECYCLE_HOOKS: dict[str, dict[str, list[str]]] = {
    "triage": {
        # After commit: the metrics' month of the incident is recomputed (dashboard).
        "saved": [
            "dashboard.lifecycle.refresh_metrics_of_the_month",
            # Same transaction: the incident.triaged event for webhook subscribers.
            "incidents.webhooks.event_incident_triaged",
        ],
    },
    "rule_out_of_scope": {"saved": ["dashboard.lifecycle.refresh_metrics_of_the_month"]},
    "classify_as_customer_event": {"saved": ["dashboard.lifecycle.refresh_metrics_of_the_month"]},
    "declare": {
        # Same transaction: one 72-hour notice clock per affected customer.
        "saved": [
            "notifications.lifecycle.start_clocks_on_declaration",
            "dashboard.lifecycle.refresh_metrics_of_the_month",
            "incidents.webhooks.event_incident_declared",
        ],
    },
    "affected_customer_added": {
        # Same transaction: a customer added after declaration gets a clock from that moment.
        "saved": ["notifications.lifecycle.start_clock_for_added_customer"],
    },
    "mark_notified": {
        "guard": ["notifications.lifecycle.customers_not_yet_notified"],
        "saved": [
            "dashboard.lifecycle.refresh_metrics_of_the_month",
            "incidents.webhooks.event_incident_notified",
        ],
    },
    "begin_post_mortem": {
        "saved": ["postmortems.lifecycle.open_post_mortem"],
    },
    "close": {
        # Closing needs the post-mortem completed with its action items settled, every
        # playbook task done, and nothing still withheld from the customers.
        "guard": [
            "postmortems.lifecycle.missing_to_close",
            "triage.lifecycle.response_tasks_not_done",
            "notifications.lifecycle.withholdings_still_active",
        ],
        "saved": [
            "dashboard.lifecycle.refresh_metrics_of_the_month",
            "incidents.webhooks.event_incident_closed",
        ],
    },
    "notice_approved": {
        # The post-mortem summary version that went out; then a training_lapse_warning in the
        # incident's audit trail when the approving incident manager's mandatory training has
        # lapsed or was never done (not for the scanner's own notice; a warning, not a refusal).
        "saved": [
            "postmortems.lifecycle.record_summary_sent",
            "postmortems.training.warn_approver_training_lapsed",
        ],
    },
    "owner_assigned": {
        # Same transaction: the same warning when the new owner's mandatory training has lapsed.
        "saved": ["postmortems.training.warn_owner_training_lapsed"],
    },
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Under /api/: an exception that escaped a view becomes a problem (RFC 9457), 503 when the
    # database or broker is unreachable.
    "incidents.api.problems.ApiProblemMiddleware",
    # Serves static files (admin, site CSS) in production without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # An account past its expiry date (every auditor's has one) is logged out.
    "incidents.middleware.AccountExpiryMiddleware",
    # Every record an auditor opens is written to the read log.
    "incidents.middleware.AuditorReadLogMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Django's own Content-Security-Policy header (SECURE_CSP below) on every response.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # request.htmx: views answer htmx's partial requests (the board's live rows) with fragments.
    "django_htmx.middleware.HtmxMiddleware",
    # Form posts that are not UTF-8: 400 before a view (or the CSRF check, in process_view)
    # decodes them lossily.
    "incidents.middleware.Utf8FormMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The banner reminding incident managers that no drill completed in 12 months.
                "postmortems.context_processors.drill_reminder",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the Celery worker share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if env.bool("DATABASE_POOL", default=False):
        # Django's connection pool is built on psycopg 3's pool.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = True
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# An unreachable database fails a request within seconds (503), not after the OS's TCP timeout.
_DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", _DATABASE_CONNECT_TIMEOUT)
    if _options.get("pool") is True:
        # Waiting for a free pooled connection is bounded too.
        _options["pool"] = {"timeout": env.float("DATABASE_POOL_TIMEOUT", default=2.0)}
    # Prepared statements: values bound by the server (psycopg's server-side binding) and a
    # statement run DATABASE_PREPARE_THRESHOLD times on a connection kept prepared there, so
    # PostgreSQL parses and plans the API's repeated statements once per connection instead
    # of every time (an API create: 4.1 to 1.6 ms of database CPU, bench/api_load.py).
    # DATABASE_PREPARED_STATEMENTS=false for a pooler in transaction mode that cannot keep
    # them (PgBouncer before 1.21 without max_prepared_statements); Django's own default.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        _options.setdefault("server_side_binding", True)
        _options.setdefault("prepare_threshold", env.int("DATABASE_PREPARE_THRESHOLD", default=5))
if "TEST" not in DATABASES["default"] and env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
#: Username and password, refusing expired accounts and auditors without an expiry date; model
#: permissions read in one query per request instead of two.
AUTHENTICATION_BACKENDS = ["incidents.backends.ModelBackendOneQuery"]
LOGIN_REDIRECT_URL = "dashboard:board"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ja", "日本語"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# All instants are stored in UTC; DISPLAY_TIME_ZONE is only for showing them, always with the zone.
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DISPLAY_TIME_ZONE: str = env.str("DISPLAY_TIME_ZONE", default="UTC")
# Instants formatted by Django itself (the admin, the auditors' site) carry their zone.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Request bodies above this size are refused with 413 (API) rather than parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE: int = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576)

# Evidence files (README "Evidence files"). Stored through STORAGES["evidence"]: the filesystem
# under BREACHDESK_VAR_DIR/evidence by default, readable by the application's user only; with
# EVIDENCE_STORAGE=s3 an S3-compatible bucket through django-storages (credentials from the
# standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment, never from this file).
EVIDENCE_STORAGE: str = env.str("EVIDENCE_STORAGE", default="filesystem")
if EVIDENCE_STORAGE == "filesystem":
    STORAGES["evidence"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env.str("EVIDENCE_ROOT", default=str(VAR_DIR / "evidence")),
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
elif EVIDENCE_STORAGE == "s3":
    STORAGES["evidence"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("EVIDENCE_S3_BUCKET"),
            "endpoint_url": env.str("EVIDENCE_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("EVIDENCE_S3_REGION", default="") or None,
            "location": env.str("EVIDENCE_S3_PREFIX", default="evidence"),
            # Objects are private and never overwritten; downloads go through the application.
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    raise ImproperlyConfigured(f"EVIDENCE_STORAGE must be 'filesystem' or 's3', not {EVIDENCE_STORAGE!r}.")
#: Largest evidence file accepted (bytes); a larger upload is refused with 413.
EVIDENCE_MAX_BYTES: int = env.int("EVIDENCE_MAX_BYTES", default=50 * 1024 * 1024)
#: File name extensions accepted as evidence (lower case, without the dot). Executables,
#: scripts and HTML/SVG are not among them, and content that starts like an executable is
#: refused whatever its name (incidents.files).
EVIDENCE_ALLOWED_EXTENSIONS: list[str] = env.list(
    "EVIDENCE_ALLOWED_EXTENSIONS",
    default=[
        "pdf", "txt", "log", "csv", "tsv", "json", "xml", "eml", "msg", "mbox",
        "png", "jpg", "jpeg", "gif", "webp", "tif", "tiff", "heic",
        "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf", "md",
        "zip", "7z", "gz", "tar", "pcap", "pcapng", "evtx",
    ],
)  # fmt: skip
#: The model of playbook tasks that evidence files may be attached to (an app above incidents;
#: named here so that incidents never imports it).
EVIDENCE_TASK_MODEL: str = "triage.ResponseTask"
# Uploads above this many bytes are streamed to a temporary file rather than held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE: int = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
#: Duplicate suggestions (incidents.merging): incidents whose detection times lie within this
#: many hours of each other are candidates.
DUPLICATE_WINDOW_HOURS: int = env.int("DUPLICATE_WINDOW_HOURS", default=72)

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content Security Policy (Django 6's built-in middleware): scripts and styles only from our own
# static files, never inline; no plugins, no framing, forms post only to us. The notice preview's
# sandboxed frame (srcdoc) inherits this policy, so an email's markup can run nothing there.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Email (Django 6.1 MAILERS). Default: the local SMTP sink that scripts/run starts
# (manage.py run_mail_sink, messages stored under var/mail/). EMAIL_URL
# switches: smtp://user:password@relay:25, smtp+tls://...:587 (STARTTLS), smtps://...:465,
# consolemail://, filemail://. EMAIL_TIMEOUT (seconds) bounds every SMTP operation.
_EMAIL_TIMEOUT_SECONDS: int = env.int("EMAIL_TIMEOUT", default=30)
_email = env.email_url("EMAIL_URL", default="smtp://127.0.0.1:8025")
_email_options: dict = {}
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _email_options = {
        "host": _email.get("EMAIL_HOST") or "localhost",
        "port": _email.get("EMAIL_PORT") or None,
        "username": _email.get("EMAIL_HOST_USER") or "",
        "password": _email.get("EMAIL_HOST_PASSWORD") or "",
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        "timeout": _EMAIL_TIMEOUT_SECONDS,
    }
elif _email["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend":
    _email_options = {"file_path": str(VAR_DIR / "mail")}
# Django's SMTP backend encodes domains with IDNA 2003 (faß.de became fass.de) and cannot send to
# an internationalised local part: incidents.mail.EmailBackend is Django's with IDNA 2008 and
# SMTPUTF8 where the relay offers it (issue 8).
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _email["EMAIL_BACKEND"] = "incidents.mail.EmailBackend"
MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Breachdesk <breachdesk@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SITE_URL: str = env.str("SITE_URL", default="http://127.0.0.1:8000")

# Celery. Default: the filesystem broker under var/ (no Redis needed); CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery" / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# The transport options of a Redis broker (also read by the tests that check the bound).
BROKER_REDIS_TRANSPORT_OPTIONS = {
    # Well above any task's time limit, so a long task is not redelivered while it runs.
    "visibility_timeout": 3600,
    # A publisher that finds Redis down gives up after one connection attempt instead of
    # kombu's default of retrying for broker_connection_timeout plus back-off (about 6 s per
    # enqueue): a request that queues a wake-up must not wait on Redis (config.celery.enqueue;
    # the scanner finds the work). Workers and beat reconnect by their own retry settings.
    "max_retries": 0,
    # A Redis that accepts connections but does not answer (black-holed, hung) fails within
    # a second or two, not minutes: connect 1 s, each read or write 2 s (above kombu's 1 s
    # BRPOP poll, so a worker's idle wait is not a timeout). Issue 8.
    "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_CONNECT_TIMEOUT", default=1.0),
    "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2.0),
}
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = BROKER_REDIS_TRANSPORT_OPTIONS
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# Runs tasks in-process (tests that do not start a worker; never in production).
CELERY_TASK_ALWAYS_EAGER: bool = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Issue 8: a request that queues a wake-up never waits on a broker that is down or hangs for more
# than a second or two (config.celery.enqueue makes one attempt; the row is already stored and
# the deadline scanner wakes the worker). Workers and beat keep retrying their own connection.
CELERY_BROKER_CONNECTION_TIMEOUT: float = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)
# Publishes by beat and by workers (not enqueue, which never retries) try once more after
# 0.5 s: a blip of the broker is bridged, a broker that is down costs them a second or two.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.5,
    "interval_step": 0.5,
    "interval_max": 0.5,
}

# Django's cache holds the API throttles' counters. Default: memory of each process (one
# process: fine; several: use CACHE_URL=redis://host:6379/1 so they share the counts).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

REST_FRAMEWORK = {
    # The token first: missing or bad credentials then answer 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "incidents.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "incidents.api.throttling.UserThrottle",
        "incidents.api.throttling.TokenThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER", default="1200/minute"),
        "token": env.str("API_THROTTLE_TOKEN", default="600/minute"),
        "alert_source": env.str("API_THROTTLE_ALERT_SOURCE", default="6000/minute"),
    },
    # JSON only: a form-encoded or multipart body is 415. (Forms would let DRF coerce types and
    # drop empty values the schema refuses, and invalid UTF-8 would be stored as U+FFFD.)
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PERMISSION_CLASSES": ["incidents.api.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "incidents.api.pagination.KeysetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "incidents.api.problems.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Breachdesk API",
    "DESCRIPTION": "Personal data breach intake, lifecycle and notification.",
    "VERSION": "1",
    # Every error answer is documented as RFC 9457 problem details (incidents.api.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "incidents.api.schema.problem_responses",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets whose field names repeat across notification models (kind, status) need names.
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "incidents.models.Incident.Severity",
        "ClockKindEnum": "notifications.models.Clock.Kind",
        "ClockStatusEnum": "notifications.models.Clock.Status",
        "NoticeKindEnum": "notifications.models.Notice.Kind",
        "NoticeStatusEnum": "notifications.models.Notice.Status",
        "DeliveryStatusEnum": "notifications.models.Delivery.Status",
        "SkippedRecipientReasonEnum": "notifications.models.SkippedRecipient.Reason",
        "WithholdingReasonEnum": "notifications.models.Withholding.Reason",
        "PostMortemStatusEnum": "postmortems.models.PostMortem.Status",
        "ActionItemStatusEnum": "postmortems.models.ActionItem.Status",
        "NoticeFieldEnum": "notifications.models.NOTICE_FIELDS",
        "NoticeTextEnum": "notifications.models.TRANSLATABLE_TEXTS",
        "LikelyConsequenceEnum": "incidents.models.LikelyConsequence",
        # Two choice sets are named "scope": the triage assessment's keeps its name.
        "ScopeEnum": "triage.models.Assessment.Scope",
        "TrainingOverdueScopeEnum": ["everyone", "own"],
        "TrainingCourseStatusEnum": ["lapsed", "never_completed"],
    },
}

# ---- Hardening (issue 8.5): HTTPS only, the browsable API only in DEBUG -------------------------
#: HTTPS_ONLY (default: on whenever DEBUG is off) turns on HSTS, the redirect of plain HTTP to
#: HTTPS and secure session and CSRF cookies, so that `manage.py check --deploy` is clean with
#: nothing set but DEBUG=false and a SECRET_KEY. HTTPS_ONLY=false turns all of them off, for a
#: deployment that runs on plain HTTP (a private network, the compose demo) or whose proxy
#: terminates TLS and does the redirect and HSTS itself. A proxy that terminates TLS and forwards
#: plain HTTP with HTTPS_ONLY on needs SECURE_PROXY_SSL_HEADER (the header it sets, e.g.
#: HTTP_X_FORWARDED_PROTO, overwritten by the proxy on every request), else every request would
#: be redirected forever.
HTTPS_ONLY: bool = env.bool("HTTPS_ONLY", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS_ONLY
#: One year: browsers then refuse plain HTTP to this host for that long (0 with HTTPS_ONLY off).
SECURE_HSTS_SECONDS: int = env.int("HSTS_SECONDS", default=31_536_000) if HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=True)
#: Asking browsers to preload the host into their HSTS lists is a decision for the domain's
#: owner that is slow to undo; off unless HSTS_PRELOAD=true, and check --deploy's reminder of it
#: (security.W021) is silenced while off.
SECURE_HSTS_PRELOAD: bool = env.bool("HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS: list[str] = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
#: SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE may still be set on their own; they follow
#: HTTPS_ONLY by default.
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=HTTPS_ONLY)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=HTTPS_ONLY)
_PROXY_SSL_HEADER: str = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _PROXY_SSL_HEADER:
    if not _PROXY_SSL_HEADER.startswith("HTTP_"):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must name a request header as Django sees it, e.g. HTTP_X_FORWARDED_PROTO."
        )
    SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER, "https")
# Web pages take GET, HEAD and POST only (405 otherwise); an admin action with selected rows
# that are not ids answers 400 (incidents.hardening).
MIDDLEWARE += [
    "incidents.hardening.PageMethodsMiddleware",
    "incidents.hardening.AdminActionInputMiddleware",
]
#: The browsable API (HTML forms over the API) only in DEBUG; otherwise every answer is JSON.
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = ["rest_framework.renderers.JSONRenderer"] + (
    ["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []
)
# ---- end of hardening ----------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Notification clocks (DESIGN.md section 3). Customers must be told within NOTICE_WINDOW_HOURS of
# elapsed time after declaration (a customer's contract may set a shorter window). The scanner
# issues the initial notice from the facts known so far NOTICE_AUTO_SEND_LEAD_HOURS before a
# clock is due if none has gone out (0 disables).
NOTICE_WINDOW_HOURS: int = env.int("NOTICE_WINDOW_HOURS", default=72)
NOTICE_AUTO_SEND_LEAD_HOURS: int = env.int("NOTICE_AUTO_SEND_LEAD_HOURS", default=6)
if not 1 <= NOTICE_WINDOW_HOURS <= 72:
    raise ImproperlyConfigured("NOTICE_WINDOW_HOURS must be between 1 and 72.")
if not 0 <= NOTICE_AUTO_SEND_LEAD_HOURS < NOTICE_WINDOW_HOURS:
    raise ImproperlyConfigured("NOTICE_AUTO_SEND_LEAD_HOURS must be 0 or less than the window.")
# Shown in every customer notice as the contact point for questions (GDPR Art. 33(3)(b)).
NOTICE_CONTACT_POINT: str = env.str(
    "NOTICE_CONTACT_POINT", default="Data Protection Incident Response Team, privacy@localhost"
)
# Deliveries: how many the sender claims at once, and how long a claim lasts before the scanner
# hands it to another worker (a killed worker delays a notice; it never loses it). The chunk is
# also the most a killed worker re-sends (same Message-IDs): 100 halves the per-chunk database
# work of 50 (claim, records, two commits) for at most 100 duplicates after a crash.
NOTICE_SEND_CHUNK_SIZE: int = env.int("NOTICE_SEND_CHUNK_SIZE", default=100)
NOTICE_CLAIM_SECONDS: int = env.int("NOTICE_CLAIM_SECONDS", default=300)
# On PostgreSQL the sender claims and records on a second connection while a chunk goes over
# SMTP (notifications.sender.outbox_send_due); off: one step after the other.
NOTICE_SEND_OVERLAP: bool = env.bool("NOTICE_SEND_OVERLAP", default=True)
# The pages show the background worker as down (red) when its last heartbeat (every 30 s) is
# older than this many seconds (incidents.heartbeat).
WORKER_HEARTBEAT_STALE_SECONDS: int = env.int("WORKER_HEARTBEAT_STALE_SECONDS", default=120)
NOTICE_MAX_ATTEMPTS: int = env.int("NOTICE_MAX_ATTEMPTS", default=12)

# Outgoing webhooks (incidents.webhooks, README "Webhooks"). Subscribers must be public https
# URLs: WEBHOOK_ALLOW_PRIVATE_ADDRESSES lets them resolve to private, loopback and link-local
# addresses and use http (the tests' and the demo's local receiver; never in production, where
# it would let a subscriber URL reach internal services).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES: bool = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOK_CONNECT_TIMEOUT_SECONDS: float = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=3.0)
WEBHOOK_READ_TIMEOUT_SECONDS: float = env.float("WEBHOOK_READ_TIMEOUT_SECONDS", default=5.0)
# Retries of 5xx, 408, 429, timeouts and connection errors: 30 s doubling, at most an hour, 10
# attempts (about 4.5 hours in all); then the delivery fails and an incident manager may send
# it again.
WEBHOOK_MAX_ATTEMPTS: int = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_RETRY_BASE_SECONDS: int = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_RETRY_MAX_SECONDS: int = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=3600)
WEBHOOK_SEND_CHUNK_SIZE: int = env.int("WEBHOOK_SEND_CHUNK_SIZE", default=20)
# Longer than a chunk's worst case (chunk x (connect + read timeouts)).
WEBHOOK_CLAIM_SECONDS: int = env.int("WEBHOOK_CLAIM_SECONDS", default=300)
# Which breach fields are withheld from customers now (the notifications app owns them); a
# payload leaves them out. Empty: every withholdable fact is left out (fail closed).
WEBHOOK_WITHHELD_FIELDS_HOOK: str = "notifications.webhooks.withheld_fields"
# Free text (nature of the breach, measures, ...) is written in NOTICE_SOURCE_LANGUAGE; an
# incident manager may give it per language. With NOTICE_REQUIRE_TRANSLATIONS, approval refuses
# a notice while a text lacks a translation into a language it will be sent in.
NOTICE_SOURCE_LANGUAGE: str = env.str("NOTICE_SOURCE_LANGUAGE", default="en")
if NOTICE_SOURCE_LANGUAGE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(
        "NOTICE_SOURCE_LANGUAGE must be one of the notice languages (en, de, fr, es, ja)."
    )
NOTICE_REQUIRE_TRANSLATIONS: bool = env.bool("NOTICE_REQUIRE_TRANSLATIONS", default=False)
# The worker that acts on an approval renders and creates the deliveries of this many customers
# per transaction (progress is committed chunk by chunk; a killed worker resumes there).
NOTICE_CREATE_CHUNK_CUSTOMERS: int = env.int("NOTICE_CREATE_CHUNK_CUSTOMERS", default=200)
if NOTICE_CREATE_CHUNK_CUSTOMERS < 1:
    raise ImproperlyConfigured("NOTICE_CREATE_CHUNK_CUSTOMERS must be at least 1.")

# Contact confirmation (issue 11). Every CONTACT_CONFIRMATION_DAYS each customer's administrative
# contacts are emailed a signed link to confirm or correct them; a link works for
# CONTACT_CONFIRMATION_LINK_DAYS, and a customer that has not confirmed by then is marked
# "unconfirmed". Beat runs the round daily for the customers that are due, at most
# CONTACT_CONFIRMATION_BATCH customers per task (the task queues itself again while more are due).
CONTACT_CONFIRMATION_DAYS: int = env.int("CONTACT_CONFIRMATION_DAYS", default=180)
CONTACT_CONFIRMATION_LINK_DAYS: int = env.int("CONTACT_CONFIRMATION_LINK_DAYS", default=30)
CONTACT_CONFIRMATION_BATCH: int = env.int("CONTACT_CONFIRMATION_BATCH", default=500)
if CONTACT_CONFIRMATION_DAYS < 1:
    raise ImproperlyConfigured("CONTACT_CONFIRMATION_DAYS must be at least 1.")
if not 1 <= CONTACT_CONFIRMATION_LINK_DAYS <= CONTACT_CONFIRMATION_DAYS:
    raise ImproperlyConfigured("CONTACT_CONFIRMATION_LINK_DAYS must be from 1 to CONTACT_CONFIRMATION_DAYS.")
if CONTACT_CONFIRMATION_BATCH < 1:
    raise ImproperlyConfigured("CONTACT_CONFIRMATION_BATCH must be at least 1.")
# The public confirmation page is throttled per link and per client address (requests per hour,
# counted in Django's cache: notifications.throttle).
CONTACT_CONFIRMATION_REQUESTS_PER_TOKEN: int = env.int("CONTACT_CONFIRMATION_REQUESTS_PER_TOKEN", default=60)
CONTACT_CONFIRMATION_REQUESTS_PER_ADDRESS: int = env.int(
    "CONTACT_CONFIRMATION_REQUESTS_PER_ADDRESS", default=300
)
# The request header (a META key such as HTTP_X_REAL_IP) that the reverse proxy sets to the
# client's address; empty: REMOTE_ADDR (no proxy, or one that hides clients behind one address).
CLIENT_IP_HEADER: str = env.str("CLIENT_IP_HEADER", default="") or "REMOTE_ADDR"

# API writes: an Idempotency-Key's first answer is kept this long (hours) for retries.
IDEMPOTENCY_KEY_HOURS: int = env.int("IDEMPOTENCY_KEY_HOURS", default=24)
# API tokens: lifetime of a token created without one (days; at most 366).
API_TOKEN_DEFAULT_DAYS: int = env.int("API_TOKEN_DEFAULT_DAYS", default=90)

# Signed alert intake (POST /api/intake/alerts/): a signature's timestamp may differ from now by
# at most this many seconds (older: stale; replays inside the window are refused by their
# stored fingerprint); after a rotation the previous secret keeps working for
# ALERT_SECRET_GRACE_HOURS unless the command says otherwise.
ALERT_SIGNATURE_TOLERANCE_SECONDS: int = env.int("ALERT_SIGNATURE_TOLERANCE_SECONDS", default=300)
ALERT_SECRET_GRACE_HOURS: int = env.int("ALERT_SECRET_GRACE_HOURS", default=24)

# The public report page (/report/): reports accepted per contact address and per IP address
# in a rolling hour.
REPORT_LIMIT_PER_EMAIL_PER_HOUR: int = env.int("REPORT_LIMIT_PER_EMAIL_PER_HOUR", default=3)
REPORT_LIMIT_PER_IP_PER_HOUR: int = env.int("REPORT_LIMIT_PER_IP_PER_HOUR", default=10)
# Behind a proxy, the number of proxies whose X-Forwarded-For entries to trust (0: use the
# connection's address).
TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)

# The response metrics (dashboard.models.MonthlyMetric) are recomputed by beat this often, for the
# months that changed; the metrics page says when.
METRICS_REFRESH_MINUTES = env.int("METRICS_REFRESH_MINUTES", default=5)
if METRICS_REFRESH_MINUTES < 1:
    raise ImproperlyConfigured("METRICS_REFRESH_MINUTES must be at least 1.")

# --- Sign-in (issue 8.3) ------------------------------------------------------------------------
# One block, so that it merges beside the other settings work: lock-out after repeated failures
# (django-axes), a second factor for incident managers and auditors (django-otp: TOTP, and
# WebAuthn security keys and passkeys through django-otp-webauthn), single sign-on through OpenID
# Connect (mozilla-django-oidc) when OIDC_* is set, session idle and absolute timeouts, and every
# login, failure, lock-out and permission denial as a SecurityAuditEvent (incidents.signin).
# README "Sign-in" documents each setting.
from datetime import timedelta as _timedelta  # noqa: E402 - this block stays self-contained
from urllib.parse import urlsplit as _urlsplit  # noqa: E402

# axes before incidents: its signal receivers run first, so ours see the lock-out it decided.
INSTALLED_APPS.insert(INSTALLED_APPS.index("incidents"), "axes")
INSTALLED_APPS[INSTALLED_APPS.index("incidents") : INSTALLED_APPS.index("incidents")] = [
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp_webauthn",
]
_after_auth = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
MIDDLEWARE[_after_auth:_after_auth] = [
    # request.user.is_verified(): whether this session passed a second factor.
    "django_otp.middleware.OTPMiddleware",
    # Every 403 (and a refused API token's 401) becomes a SecurityAuditEvent.
    "incidents.signin.SecurityAuditMiddleware",
]
# SESSION_IDLE_TIMEOUT and SESSION_ABSOLUTE_TIMEOUT end a session (audited; the login page
# says why, so after the messages middleware).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "incidents.signin.SessionTimeoutMiddleware",
)
_after_expiry = MIDDLEWARE.index("incidents.middleware.AccountExpiryMiddleware") + 1
# After the password, incident managers and auditors pass (or first enrol) a second factor.
MIDDLEWARE.insert(_after_expiry, "incidents.signin.SecondFactorMiddleware")
# Last, as django-axes asks: turns a lock-out decided during authentication into its answer.
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# django-axes' backend first: it refuses a locked-out username and address before any password
# is checked (it authenticates nobody itself).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]

# Lock-out (django-axes): AXES_FAILURE_LIMIT failed logins for one username from one address
# lock that combination out for AXES_COOLOFF_MINUTES (the right password is refused too; 429
# with a page saying when to try again); a successful login resets the count. Superusers unlock
# early in /admin/ (Access attempts) or with manage.py axes_reset_username.
# django-otp's admin never shows a device's secret or QR code, superusers included (a copy of
# someone's second factor).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
AXES_ENABLED: bool = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = _timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
if AXES_FAILURE_LIMIT < 1 or _timedelta(0) >= AXES_COOLOFF_TIME:
    raise ImproperlyConfigured("AXES_FAILURE_LIMIT and AXES_COOLOFF_MINUTES must be at least 1.")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "incidents.signin.lockout_response"
AXES_CLIENT_IP_CALLABLE = "incidents.signin.client_ip"
# Successful logins are SecurityAuditEvents already; axes keeps only the failures it counts.
AXES_DISABLE_ACCESS_LOG = True
# Our SecurityAuditEvents say what axes would log (and its start-up banner is noise in commands).
AXES_VERBOSE = False
# Never stored in axes' records of failures: the single sign-on callback's code and state.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code", "state"]

# Second factor (django-otp). TWO_FACTOR_REQUIRED: members of TWO_FACTOR_GROUPS must pass a
# second factor after their password (a user without a device is sent to enrol first); anyone
# else who enrolled a device is asked for it too. scripts/run (the embedded demo) and the tests
# turn it off; a production deployment keeps the default.
TWO_FACTOR_REQUIRED: bool = env.bool("TWO_FACTOR_REQUIRED", default=True)
TWO_FACTOR_GROUPS: list[str] = env.list("TWO_FACTOR_GROUPS", default=["incident_manager", "auditor"])
OTP_TOTP_ISSUER = "Breachdesk"
# django-otp's TOTP throttling: each wrong code doubles the wait before the next try (seconds).
OTP_TOTP_THROTTLE_FACTOR = 1
# WebAuthn (django-otp-webauthn): a second factor only, never a passwordless login. Browsers
# offer it only to https:// sites and http://localhost: the origin is SITE_URL's when it is one
# of those (else http://localhost on SITE_URL's port, for a demo on 127.0.0.1), and the relying
# party is that origin's host unless WEBAUTHN_RP_ID says otherwise.
_site = _urlsplit(SITE_URL)
if _site.scheme == "https" or _site.hostname == "localhost":
    _webauthn_origin = f"{_site.scheme}://{_site.netloc}"
else:
    _webauthn_origin = "http://localhost" + (f":{_site.port}" if _site.port else "")
OTP_WEBAUTHN_RP_ID: str = env.str(
    "WEBAUTHN_RP_ID", default=_urlsplit(_webauthn_origin).hostname or "localhost"
)
OTP_WEBAUTHN_RP_NAME = "Breachdesk"
OTP_WEBAUTHN_ALLOWED_ORIGINS: list[str] = [_webauthn_origin]
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False

# Sessions: ended after SESSION_IDLE_TIMEOUT seconds without a request (the board's own
# minute-by-minute refresh does not count) and SESSION_ABSOLUTE_TIMEOUT seconds after login,
# whichever comes first; the cookie lives no longer than the absolute timeout.
SESSION_IDLE_TIMEOUT: int = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_TIMEOUT: int = env.int("SESSION_ABSOLUTE_TIMEOUT", default=12 * 60 * 60)
if not 60 <= SESSION_IDLE_TIMEOUT <= SESSION_ABSOLUTE_TIMEOUT:
    raise ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT must be at least 60 seconds and at most SESSION_ABSOLUTE_TIMEOUT."
    )
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT

# Single sign-on through OpenID Connect (mozilla-django-oidc, authorization code flow with PKCE):
# on when OIDC_RP_CLIENT_ID is set, and then the provider's endpoints must be too. Roles come
# from the OIDC_GROUPS_CLAIM claim through OIDC_GROUPS_MAPPING ("claim value=group,..."); a user
# none of whose values is mapped gets no role. OIDC_SATISFIES_TWO_FACTOR: the provider is
# trusted to have asked for a second factor (else our own is asked after it).
OIDC_RP_CLIENT_ID: str = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET: str = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT: str = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT: str = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT: str = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT: str = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_OP_ISSUER: str = env.str("OIDC_OP_ISSUER", default="")
OIDC_RP_SIGN_ALGO: str = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES: str = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_GROUPS_CLAIM: str = env.str("OIDC_GROUPS_CLAIM", default="groups")
OIDC_GROUPS_MAPPING: dict[str, str] = env.dict("OIDC_GROUPS_MAPPING", default={})
OIDC_SATISFIES_TWO_FACTOR: bool = env.bool("OIDC_SATISFIES_TWO_FACTOR", default=True)
OIDC_CREATE_USER: bool = env.bool("OIDC_CREATE_USER", default=True)
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
_OIDC_REQUIRED = (
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)
if OIDC_ENABLED and (_missing := [name for name in _OIDC_REQUIRED if not globals()[name]]):
    raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set, so set {', '.join(_missing)} too.")
if _unknown := sorted(set(OIDC_GROUPS_MAPPING.values()) - {"responder", "incident_manager", "auditor"}):
    raise ImproperlyConfigured(
        f"OIDC_GROUPS_MAPPING maps to {', '.join(_unknown)}: the groups are responder, "
        "incident_manager and auditor."
    )
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("incidents.oidc.OidcBackend")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_USERNAME_ALGO = "incidents.oidc.username_from_claims"
# --- end of sign-in ----------------------------------------------------------------------------
# The audit trail's seal (incidents.audit_keys, README "Audit trail"): HMAC-SHA256 keys kept out
# of the database. AUDIT_HMAC_KEY (at least 32 characters; unset: derived from SECRET_KEY as the
# hex of HMAC-SHA256(SECRET_KEY, "breachdesk-audit")); AUDIT_HMAC_PREVIOUS_KEYS: comma-separated
# retired keys whose rows still verify. AUDIT_CHECKPOINT_FILE: a file the signed checkpoints of
# every chain's head are also appended to (one JSON object a line; empty: the table only).
AUDIT_HMAC_KEY: str = env.str("AUDIT_HMAC_KEY", default="")
AUDIT_HMAC_PREVIOUS_KEYS: list[str] = env.list("AUDIT_HMAC_PREVIOUS_KEYS", default=[])
if any(0 < len(key) < 32 for key in [AUDIT_HMAC_KEY, *AUDIT_HMAC_PREVIOUS_KEYS]):
    raise ImproperlyConfigured(
        "AUDIT_HMAC_KEY and each of AUDIT_HMAC_PREVIOUS_KEYS must be at least 32 characters."
    )
AUDIT_CHECKPOINT_FILE: str = env.str("AUDIT_CHECKPOINT_FILE", default="")
