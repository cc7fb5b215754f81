"""The secret that seals the audit trail: HMAC-SHA256 keys kept out of the database.

Every audit row's ``hash`` (and every checkpoint's ``signature``) is an HMAC-SHA256 under a key
that lives in the settings, not in the database, so someone who can write the database but
does not hold the key cannot rewrite a row and recompute a hash that verifies.

Keys (README, "Audit trail"):

- ``AUDIT_HMAC_KEY`` (environment): the current key, a string of at least 32 characters used as
  its UTF-8 bytes. Unset: derived from ``SECRET_KEY`` as the hex digest of
  ``HMAC-SHA256(key=SECRET_KEY, message="breachdesk-audit")`` (64 characters), so a fresh clone
  seals its trail at once; a deployment sets its own key, because changing ``SECRET_KEY`` then
  changes the audit key too.
- ``AUDIT_HMAC_PREVIOUS_KEYS`` (environment, comma-separated): keys retired by a rotation. Rows
  and checkpoints sealed under them still verify; new ones are sealed under the current key.

Each row records the ``key_id`` of the key that sealed it: the first 16 hex digits of
``SHA-256("breachdesk-audit-key-id\\0" + key)``. The id names a key without revealing it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: The message under which a key is derived from ``SECRET_KEY`` when ``AUDIT_HMAC_KEY`` is unset.
DERIVATION_MESSAGE = b"breachdesk-audit"
#: The shortest ``AUDIT_HMAC_KEY`` accepted (characters).
MIN_KEY_LENGTH = 32


@dataclass(frozen=True)
class AuditKey:
    """One HMAC key: ``key_id`` (16 hex digits, stored on each row it seals) and its bytes."""

    key_id: str
    secret: bytes

    def sign(self, payload: str) -> str:
        """HMAC-SHA256 hex digest (64 characters) of ``payload`` (UTF-8) under this key."""
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()


def key_id_for(secret: bytes) -> str:
    """The public id of the key ``secret``: 16 hex digits of a SHA-256 fingerprint."""
    return hashlib.sha256(b"breachdesk-audit-key-id\x00" + secret).hexdigest()[:16]


def derived_key_text(secret_key: str) -> str:
    """The audit key derived from a ``SECRET_KEY``: hex of HMAC-SHA256(SECRET_KEY, "breachdesk-audit").

    Put the value for an old ``SECRET_KEY`` in ``AUDIT_HMAC_PREVIOUS_KEYS`` when changing
    ``SECRET_KEY`` on a deployment that never set ``AUDIT_HMAC_KEY``.
    """
    return hmac.new(secret_key.encode(), DERIVATION_MESSAGE, hashlib.sha256).hexdigest()


def _key(text: str, name: str) -> AuditKey:
    if len(text) < MIN_KEY_LENGTH:
        raise ImproperlyConfigured(f"{name} must be at least {MIN_KEY_LENGTH} characters long.")
    secret = text.encode()
    return AuditKey(key_id=key_id_for(secret), secret=secret)


def current_key() -> AuditKey:
    """The key new audit rows and checkpoints are sealed with (``AUDIT_HMAC_KEY``, or derived
    from ``SECRET_KEY``). Raises ``ImproperlyConfigured`` for a key shorter than 32 characters."""
    return _current_key(getattr(settings, "AUDIT_HMAC_KEY", "") or "", settings.SECRET_KEY)


@functools.lru_cache(maxsize=8)
def _current_key(configured: str, secret_key: str) -> AuditKey:
    # Derived once per pair of settings (every audit row asks): two HMACs fewer per append.
    if configured:
        return _key(configured, "AUDIT_HMAC_KEY")
    return _key(derived_key_text(secret_key), "the key derived from SECRET_KEY")


def verification_keys() -> dict[str, AuditKey]:
    """Every key a row may be sealed with, by ``key_id``: the current one and the previous
    ones (``AUDIT_HMAC_PREVIOUS_KEYS``)."""
    keys = {key.key_id: key for key in (current_key(),)}
    for text in getattr(settings, "AUDIT_HMAC_PREVIOUS_KEYS", []) or []:
        if text:
            key = _key(text, "Each of AUDIT_HMAC_PREVIOUS_KEYS")
            keys.setdefault(key.key_id, key)
    return keys
