"""SQL compiled once per process for the statements that run on every API write.

The ORM compiles a queryset or an INSERT into SQL anew each time it runs: for the token check
(a join with four permission and account subqueries), the webhook subscribers' lookup and the
incident's 45-column INSERT that was about 4 ms of a create's 13 ms of CPU (bench/api_load.py),
against microseconds to run the same SQL again with new values. Here each statement is compiled
by the ORM itself, once per database alias, and then run with the values of the moment:

- ``CompiledQuery``: a queryset whose only varying inputs are text values named when it is
  built; run again, it gives the model instances the queryset gives (``select_related``
  objects and annotations included, with the ORM's own converters).
- ``insert_instance``: ``Model.save()`` for a new row, for models without save signal receivers:
  the same values (each field's ``pre_save`` and ``get_db_prep_save``), one INSERT whose SQL is
  kept per model and column set.

Nothing is cached but SQL text and the compiler's description of its columns: every run reads
the database, so a revoked token or a new subscriber counts on the next request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import NOT_PROVIDED, Model, QuerySet, signals
from django.db.models.query import get_related_populators

#: Stand in for a named text or integer value while the queryset is compiled (never sent to a
#: database).
_MARKER = "\x1fcompiled-query-value:{name}\x1f"
_INTEGER_MARKER = -(2**62)


class CompiledQuery[M: Model]:
    """A SELECT of model ``M`` compiled once per database alias.

    ``build(**values) -> QuerySet[M]``: makes the queryset from text values (the names in
    ``names``) and integers (``integers``: ids, foreign keys); it is called once per alias with
    stand-ins, and the positions of the stand-ins among the compiled parameters are where each
    run's values go. Every named value must reach the SQL as a parameter unchanged (an
    equality on a text field or an id does; a value that a lookup transforms, such as
    ``__icontains``, does not: ``ValueError`` at the first run).

    ``run(using=None, **values) -> list[M]``: the instances, as ``list(build(**values))`` gives
    them (``tests/incidents/test_statements.py`` compares both).
    """

    def __init__(
        self, build: Callable[..., QuerySet[M]], names: tuple[str, ...] = (), integers: tuple[str, ...] = ()
    ) -> None:
        self.build = build
        self.names = names
        self.integers = integers
        self._compiled: dict[str, tuple[str, list[Any], dict[str, list[int]], Any, Any]] = {}
        self._row_plans: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str) -> tuple[str, list[Any], dict[str, list[int]], Any, Any]:
        markers: dict[str, Any] = {name: _MARKER.format(name=name) for name in self.names}
        # Integer stand-ins: values no id takes (an id or foreign key equality passes them as given).
        markers.update({name: _INTEGER_MARKER - index for index, name in enumerate(self.integers)})
        queryset = self.build(**markers).using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        positions = {
            name: [
                index for index, value in enumerate(params) if type(value) is type(marker) and value == marker
            ]
            for name, marker in markers.items()
        }
        transformed = [
            value
            for value in params
            if isinstance(value, str)
            and "\x1fcompiled-query-value:" in value
            and value not in markers.values()
        ]
        missing = [name for name, found in positions.items() if not found]
        if missing or transformed:
            raise ValueError(
                f"CompiledQuery: the values {sorted(markers)} do not all reach the SQL as parameters unchanged."
            )
        return sql, list(params), positions, compiler, queryset._fetch_mode  # type: ignore[attr-defined]

    def run(self, using: str | None = None, **values: str | int) -> list[M]:
        """The instances for ``values`` (each name given at construction), read from the
        database ``using`` (default: ``default``)."""
        alias = using or DEFAULT_DB_ALIAS
        sql, params = self._statement(alias, values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return self._instances(alias, rows)

    def run_with_next_id(
        self, model: type[Model], using: str | None = None, **values: str | int
    ) -> tuple[int, list[M]]:
        """``(a new id from model's table's sequence, the instances run() gives)`` in one
        statement (PostgreSQL only): the sequence's ``nextval`` once (a materialised CTE),
        left-joined to this SELECT, so no instance still gives one row. For a caller that needs
        both before writing (the incident create: its id and the active webhook subscribers).
        The instances come in the SELECT's order (a nested loop over the one id row keeps it).
        The SELECT's columns must have distinct names (no ``select_related``)."""
        alias = using or DEFAULT_DB_ALIAS
        sql, params = self._statement(alias, values)
        meta = model._meta
        assert meta.pk is not None
        next_id = "WITH next_id AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence(%s, %s)) AS id)"
        statement = (
            f"{next_id} SELECT next_id.id, selected.* FROM next_id LEFT JOIN ({sql}) AS selected ON TRUE"  # noqa: S608 - the ORM's compiled SQL
        )
        with connections[alias].cursor() as cursor:
            cursor.execute(statement, [meta.db_table, str(meta.pk.column), *params])
            rows = cursor.fetchall()
        new_id = rows[0][0]
        selected = [row[1:] for row in rows if any(value is not None for value in row[1:])]
        return new_id, self._instances(alias, selected)

    def _statement(self, alias: str, values: Mapping[str, str | int]) -> tuple[str, list[Any]]:
        compiled = self._compiled.get(alias)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(alias) or self._compile(alias)
                self._compiled[alias] = compiled
        sql, template, positions, _compiler, _fetch_mode = compiled
        params = list(template)
        for name, indexes in positions.items():
            for index in indexes:
                params[index] = values[name]
        return sql, params

    def _instances(self, alias: str, rows: list[Any]) -> list[M]:
        if not rows:
            return []
        plan = self._row_plans.get(alias)
        if plan is None:
            plan = self._row_plans[alias] = self._row_plan(alias)
        model_class, init_list, start, end, converters, composite, populators, annotations, fetch_mode = plan
        _sql, _template, _positions, compiler, _fetch_mode = self._compiled[alias]
        if converters:
            rows = list(compiler.apply_converters(rows, converters))
        if composite is not None:  # as results_iter: a composite key's columns as one tuple
            rows = list(compiler.composite_fields_to_tuples(rows, composite))
        instances = []
        for row in rows:
            instance = model_class.from_db(alias, init_list, row[start:end], fetch_mode=fetch_mode)
            for populator in populators:
                populator.populate(row, instance)
            for name, position in annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances

    def _row_plan(self, alias: str) -> tuple[Any, ...]:
        """How rows become instances, worked out once per alias from the compiler's description
        of its columns (what ``ModelIterable`` and ``results_iter`` work out per run): the
        model, its attribute names, the columns' converters, the ``select_related`` populators
        (which keep no instance) and the annotations' positions."""
        _sql, _template, _positions, compiler, fetch_mode = self._compiled[alias]
        select, klass_info = compiler.select, compiler.klass_info
        columns = [column[0] for column in select[: compiler.col_count]]
        select_fields = klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        return (
            klass_info["model"],
            [column[0].target.attname for column in select[start:end]],
            start,
            end,
            compiler.get_converters(columns),
            columns if compiler.has_composite_fields(columns) else None,
            get_related_populators(klass_info, select, alias, fetch_mode),
            tuple(compiler.annotation_col_map.items()),
            fetch_mode,
        )


_insert_sql: dict[tuple[type[Model], str, tuple[str, ...]], tuple[str, bool]] = {}


def _insertable(instance: Model) -> bool:
    model = type(instance)
    meta = model._meta
    return (
        instance._state.adding
        and not meta.parents
        and not signals.pre_save.has_listeners(model)
        and not signals.post_save.has_listeners(model)
    )


def insert_instance(
    instance: Model,
    *,
    using: str | None = None,
    derived: Mapping[str, Callable[[Any], Any]] | None = None,
) -> None:
    """Insert the new ``instance`` as ``instance.save()`` would, through one INSERT compiled
    once per model and column set; afterwards ``instance.pk`` is set and the instance counts
    as saved (``_state``). ``derived``: attribute name -> function of the instance giving that
    attribute's value once the others are final (``auto_now_add`` instants included), for a
    column computed from them (an incident's reference from its id and creation year).

    For a model with ``pre_save``/``post_save`` receivers, a parent model, or an instance
    already saved, and for a value that is an expression (a database default), it calls
    ``instance.save()`` instead. The model's own ``save()`` override is not called: use it
    for models whose override only refuses updates (the append-only audit events) or only
    guards updates (django-fsm's concurrent transitions). Raises what the INSERT raises
    (``IntegrityError`` for a constraint).
    """
    alias = using or DEFAULT_DB_ALIAS
    statement = _insert_statement(instance, alias, derived)
    if statement is None:
        return
    sql, returns, prepared = statement
    meta = type(instance)._meta
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, prepared)
        if instance.pk is None:
            if returns:
                row_id = cursor.fetchone()[0]
            else:
                row_id = connection.ops.last_insert_id(cursor, meta.db_table, str(meta.pk.column))
            for converter in meta.pk.get_db_converters(connection):
                row_id = converter(row_id, meta.pk, connection)
            instance.pk = row_id
    _mark_saved(instance, alias)


def insert_together(
    instances: Sequence[tuple[Model, Mapping[str, Callable[[Any], Any]] | None]],
    *,
    using: str | None = None,
) -> None:
    """Insert several new instances, each ``(instance, derived)`` as for ``insert_instance``,
    in ONE statement on PostgreSQL when every instance but the last has its id already (the
    last's INSERT returns its id) and each would be one plain INSERT: ``WITH w1 AS (INSERT ...), w2 AS (INSERT ...) INSERT ...`` (a
    data-modifying CTE; the sub-statements run in the order given, and foreign keys between
    them hold, Django's being checked at commit). Otherwise (SQLite, an instance without its
    id, a model with save receivers) one ``insert_instance`` each, in order. Raises what the
    INSERTs raise (``IntegrityError``)."""
    alias = using or DEFAULT_DB_ALIAS
    connection = connections[alias]
    statements = (
        [
            _insert_statement(instance, alias, derived, execute_fallback=False)
            for instance, derived in instances
        ]
        if connection.vendor == "postgresql"
        and all(instance.pk is not None for instance, _ in instances[:-1])
        else [None]
    )
    if any(statement is None for statement in statements):
        # Not one plain INSERT each (save receivers, a database default among the values, a
        # derived value that needs the id), or not PostgreSQL: one insert_instance each.
        for instance, derived in instances:
            insert_instance(instance, using=alias, derived=derived)
        return
    prepared_statements = [statement for statement in statements if statement is not None]
    *leading, (last_sql, last_returns, last_values) = prepared_statements
    parts = [f"w{index} AS ({sql})" for index, (sql, _returns, _values) in enumerate(leading, start=1)]
    sql = (f"WITH {', '.join(parts)} " if parts else "") + last_sql
    params = [value for _sql, _returns, values in leading for value in values] + list(last_values)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if last_returns:  # the last instance had no id: its INSERT returns it
            instances[-1][0].pk = cursor.fetchone()[0]
    for instance, _derived in instances:
        _mark_saved(instance, alias)


def _insert_statement(
    instance: Model,
    alias: str,
    derived: Mapping[str, Callable[[Any], Any]] | None,
    *,
    execute_fallback: bool = True,
) -> tuple[str, bool, list[Any]] | None:
    """``(INSERT sql, whether it returns the id, its values)`` for ``instance``; or ``None``
    when it takes a ``save()`` instead (done here when ``execute_fallback``)."""
    if not _insertable(instance) or (derived and instance.pk is None):
        # A derived value that needs the id waits for the INSERT: save, then UPDATE it.
        if execute_fallback:
            _save(instance, alias, derived)
        return None
    meta = type(instance)._meta
    connection = connections[alias]
    instance._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    fields = [
        field
        for field in meta.local_concrete_fields
        if not getattr(field, "generated", False) and (field is not meta.pk or instance.pk is not None)
    ]
    values = [field.pre_save(instance, True) for field in fields]
    if derived:
        for name, compute in derived.items():
            setattr(instance, name, compute(instance))
        for index, field in enumerate(fields):
            if field.attname in derived:
                values[index] = getattr(instance, field.attname)
    prepared = [
        field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)
    ]
    if any(hasattr(value, "resolve_expression") for value in prepared):
        if execute_fallback:
            _save(instance, alias, None)
        return None
    # A NULL for a nullable column without a database default is left out: the column's
    # default is NULL, so the row is the same, and the statement has fewer values (a new
    # incident leaves about 20 of its 45 columns NULL). That keeps the incident create's
    # incident-and-audit statement within the 50 values up to which psycopg caches a
    # statement's conversion (past that it re-parses the SQL in Python: 0.5 ms a create).
    kept = [
        index
        for index, (field, value) in enumerate(zip(fields, prepared, strict=True))
        if value is not None or not field.null or field.db_default is not NOT_PROVIDED
    ]
    if kept and len(kept) < len(fields):
        fields = [fields[index] for index in kept]
        prepared = [prepared[index] for index in kept]
    columns = tuple(str(field.column) for field in fields)
    key = (type(instance), alias, columns)
    statement = _insert_sql.get(key)
    if statement is None:
        quote = connection.ops.quote_name
        returns = instance.pk is None and connection.features.can_return_columns_from_insert
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(column) for column in columns)})"  # noqa: S608 - identifiers from model metadata
            f" VALUES ({', '.join(['%s'] * len(fields))})"
        )
        if returns:
            sql += f" RETURNING {quote(str(meta.pk.column))}"
        statement = _insert_sql[key] = (sql, returns)
    sql, returns = statement
    return sql, returns, prepared


def _mark_saved(instance: Model, alias: str) -> None:
    instance._state.adding = False
    instance._state.db = alias
    remember = getattr(instance, "_update_initial_state", None)  # django-fsm's concurrency guard
    if callable(remember):
        remember()


def _save(instance: Model, alias: str, derived: Mapping[str, Callable[[Any], Any]] | None) -> None:
    instance.save(using=alias)
    if derived:
        for name, compute in derived.items():
            setattr(instance, name, compute(instance))
        type(instance)._default_manager.using(alias).filter(pk=instance.pk).update(
            **{name: getattr(instance, name) for name in derived}
        )
