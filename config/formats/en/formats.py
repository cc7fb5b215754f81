"""Date formats for English pages (settings.FORMAT_MODULE_PATH): every instant Django formats by
itself (the admin and the auditors' site included) shows its zone, e.g. ``2026-11-29 14:05:00
UTC``. Our own pages use the ``utc`` and ``local`` filters, which say the zone too."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s T"
