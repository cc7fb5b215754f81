"""Inserting many rows of one model at once, for the fan-out's ten thousand delivery rows.

``bulk_create`` builds a model instance per row, prepares every value through its field, writes
an ``INSERT`` with one placeholder per value, and psycopg then splits that statement in Python
again (and, with client-side binding, quotes every value), every batch: on the fan-out's
10,000 deliveries and messages about half of the creating worker's CPU time
(docs/performance.md, run H). ``insert_rows`` writes plain rows instead: on PostgreSQL one
``COPY ... FROM STDIN`` (psycopg's C dumpers, no statement to build or parse), elsewhere
``bulk_create`` as before. The rows are the same either way
(``tests/notifications/test_bulk_rows.py``).
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router

#: Field classes (exactly these, not subclasses, which may convert values their own way) whose
#: Python values psycopg writes as Django would store them: ``get_db_prep_save`` returns them
#: unchanged on PostgreSQL. Any other field's values go through ``get_db_prep_save``.
_AS_IS = frozenset(
    {
        models.CharField,
        models.EmailField,
        models.TextField,
        models.IntegerField,
        models.PositiveIntegerField,
        models.SmallIntegerField,
        models.PositiveSmallIntegerField,
        models.BigIntegerField,
        models.PositiveBigIntegerField,
        models.BooleanField,
        models.DateTimeField,
        models.ForeignKey,
        models.BinaryField,  # bytes: psycopg writes them as bytea
    }
)


def sequence_ids(model: type[models.Model], count: int, *, using: str) -> list[int]:
    """``count`` new ids for ``model`` from its table's sequence (PostgreSQL), in one query:
    for rows written with their id, or with columns derived from it."""
    meta = model._meta
    assert meta.pk is not None
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def insert_rows(
    model: type[models.Model], rows: list[dict[str, Any]], *, with_ids: bool = False
) -> list[int]:
    """Insert ``rows`` (each ``{field attname: value}``, e.g. ``customer_id``) into ``model``'s
    table; a field a row leaves out gets its default, evaluated once for the whole call (so a
    callable default such as ``timezone.now`` is the same for every row: pass it where it must
    differ). No ``save()``, no signals, as with ``bulk_create``.

    ``with_ids``: return the new primary keys in the rows' order (on PostgreSQL taken from the
    table's sequence before the ``COPY``, one query); otherwise ``[]``. Values must be of the
    types the fields take (aware datetimes, ``bytes`` for binary fields).
    """
    if not rows:
        return []
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta = model._meta
    if connection.vendor != "postgresql":
        created = model._default_manager.using(alias).bulk_create(
            [model(**row) for row in rows], batch_size=500
        )
        return [obj.pk for obj in created] if with_ids else []
    pk = meta.pk
    assert pk is not None
    fields = [field for field in meta.concrete_fields if field is not pk]
    given = set(rows[0])
    # (attname, whether the rows give it, its default, the field if its value needs preparing)
    plan = [
        (
            field.attname,
            field.attname in given,
            None if field.attname in given else field.get_default(),
            None if type(field) in _AS_IS else field,
        )
        for field in fields
    ]
    columns: list[str] = [str(field.column) for field in fields]
    ids: list[int] = []
    if with_ids:
        ids = sequence_ids(model, len(rows), using=alias)
        columns.insert(0, str(pk.column))
    with connection.cursor() as cursor:
        quote = connection.ops.quote_name
        statement = f"COPY {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        with cursor.cursor.copy(statement) as copy:  # the psycopg cursor under Django's wrapper
            for index, row in enumerate(rows):
                values: list[Any] = [ids[index]] if with_ids else []
                for attname, is_given, default, field in plan:
                    value = row[attname] if is_given else default
                    values.append(value if field is None else field.get_db_prep_save(value, connection))
                copy.write_row(values)
    return ids
