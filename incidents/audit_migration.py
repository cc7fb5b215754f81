"""What the migrations that key the audit trail run (``incidents.0014``, ``postmortems.0006``):
re-sealing the chains hashed before keys existed, and the PostgreSQL trigger that refuses
UPDATE and DELETE on the audit tables.

Why re-seal rather than keep verifying old rows as "legacy": a row accepted as legacy is
exactly the row someone without the key can forge (plain SHA-256), so accepting any would keep
the hole open for the whole history. The migration therefore first checks each chain under the
old plain hash, and re-seals its rows under the current key (``AUDIT_HMAC_KEY``, or the key
derived from ``SECRET_KEY``) only as far as that check holds: from the first row that does not
verify on, the chain is left as it was, so the break stays visible to ``verify_audit_trail``
(as "hash recomputed without the audit key" and "previous_hash does not match"). Run
``verify_audit_trail`` on the old version before migrating to see breaks that already exist.

The frozen copy of the hashed content lives here (not on the models) so that these
migrations keep doing what they did when the models change later.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

GENESIS_HASH = "0" * 64

#: The function behind every audit table's trigger (PostgreSQL).
TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION breachdesk_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Deleting a user sets actor_id to NULL on the rows it acted in (on_delete=SET_NULL);
    -- the hash covers actor_username, not actor_id, so that one change is let through.
    IF TG_OP = 'UPDATE'
        AND (to_jsonb(NEW) ->> 'actor_id') IS NULL
        AND (to_jsonb(OLD) ->> 'actor_id') IS NOT NULL
        AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
"""
DROP_TRIGGER_FUNCTION = "DROP FUNCTION IF EXISTS breachdesk_audit_append_only();"


def trigger_name(table: str) -> str:
    """The append-only trigger's name on ``table``."""
    return f"{table}_append_only"


def create_trigger_sql(table: str) -> str:
    """SQL creating the row trigger that refuses UPDATE and DELETE on ``table`` (TRUNCATE, a
    table-level statement the test runner's flush uses, is not a row event)."""
    return (
        f"CREATE TRIGGER {trigger_name(table)} BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION breachdesk_audit_append_only();"
    )


def drop_trigger_sql(table: str) -> str:
    """SQL dropping ``table``'s append-only trigger."""
    return f"DROP TRIGGER IF EXISTS {trigger_name(table)} ON {table};"


def _payload(previous_hash: str, content: dict[str, Any]) -> str:
    return previous_hash + json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _content(row: Any, subject_field: str, extra_fields: tuple[str, ...]) -> dict[str, Any]:
    content = {
        subject_field: getattr(row, f"{subject_field}_id"),
        "sequence": row.sequence,
        "occurred_at": row.occurred_at.astimezone(UTC).isoformat(),
        "actor_username": row.actor_username,
        "verb": row.verb,
        "data": row.data,
    }
    content.update({name: getattr(row, name) for name in extra_fields})
    return content


def reseal(
    model: Any, subject_field: str, extra_fields: tuple[str, ...] = (), *, unseal: bool = False
) -> int:
    """Re-seal ``model``'s chains under the current audit key (``unseal``: back to plain
    SHA-256, the reverse migration); return the number of rows re-sealed.

    ``model``: the historical model; ``subject_field``: its subject's foreign key;
    ``extra_fields``: the hashed fields beyond the shared ones. A chain is re-sealed up to its
    first row that does not verify under the old scheme (module docstring).
    """
    from incidents.audit_keys import current_key

    key = current_key()
    sealed = 0
    batch: list[Any] = []
    current: Any = None
    broken = False
    old_previous = new_previous = GENESIS_HASH
    expected_sequence = 1
    for row in model._default_manager.order_by(f"{subject_field}_id", "sequence").iterator(chunk_size=2000):
        subject = getattr(row, f"{subject_field}_id")
        if subject != current:
            current, broken = subject, False
            old_previous = new_previous = GENESIS_HASH
            expected_sequence = 1
        if broken:
            continue
        content = _content(row, subject_field, extra_fields)
        old_payload = _payload(row.previous_hash, content)
        if unseal:
            stored_ok = row.key_id == key.key_id and key.sign(old_payload) == row.hash
        else:
            stored_ok = row.key_id == "" and hashlib.sha256(old_payload.encode()).hexdigest() == row.hash
        if not stored_ok or row.previous_hash != old_previous or row.sequence != expected_sequence:
            broken = True
            continue
        old_previous = row.hash
        expected_sequence = row.sequence + 1
        payload = _payload(new_previous, content)
        row.previous_hash = new_previous
        if unseal:
            row.hash, row.key_id = hashlib.sha256(payload.encode()).hexdigest(), ""
        else:
            row.hash, row.key_id = key.sign(payload), key.key_id
        new_previous = row.hash
        batch.append(row)
        if len(batch) >= 1000:
            model._default_manager.bulk_update(batch, ["previous_hash", "hash", "key_id"])
            sealed += len(batch)
            batch = []
    if batch:
        model._default_manager.bulk_update(batch, ["previous_hash", "hash", "key_id"])
        sealed += len(batch)
    return sealed
