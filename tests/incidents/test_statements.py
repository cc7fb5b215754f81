"""``incidents.statements``: a ``CompiledQuery`` gives what its queryset gives (instances,
``select_related`` objects, annotations, converted values) with the values of each run; an
``insert_instance`` row is the row ``save()`` stores; anything they cannot do the same way is
left to the ORM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.db.models.signals import post_save

from incidents.api.authentication import api_token_create
from incidents.models import ApiToken, Incident, Supplier
from incidents.statements import CompiledQuery, insert_instance
from tests.queries import assert_query_count

COLUMNS = [
    field.attname for field in Incident._meta.concrete_fields if field.attname not in ("id", "reference")
]


def tokens_named(name):
    return (
        ApiToken.objects.select_related("user")
        .filter(name=name)
        .annotate(label=Concat(F("user__username"), Value("/"), F("name")))
        .order_by("pk")
    )


@pytest.mark.django_db
def test_a_compiled_query_gives_what_its_queryset_gives_for_each_value(responder, manager):
    api_token_create(user=responder, name="siem", lifetime=timedelta(days=1))
    api_token_create(user=manager, name="siem", lifetime=timedelta(days=2))
    api_token_create(user=manager, name="importer", lifetime=timedelta(days=3))
    compiled = CompiledQuery(tokens_named, names=("name",))

    for name in ("siem", "importer", "nobody"):
        with assert_query_count(1, "the token with its user (select_related)"):
            got = compiled.run(name=name)
        expected = list(tokens_named(name))
        assert [token.pk for token in got] == [token.pk for token in expected]
        for mine, theirs in zip(got, expected, strict=True):
            assert {f.attname: getattr(mine, f.attname) for f in ApiToken._meta.concrete_fields} == {
                f.attname: getattr(theirs, f.attname) for f in ApiToken._meta.concrete_fields
            }
            assert mine.user.username == theirs.user.username and mine.label == theirs.label
            assert mine.expires_at.tzinfo is not None and not mine._state.adding
    assert len(compiled.run(name="siem")) == 2


@pytest.mark.django_db
def test_a_value_that_does_not_reach_the_sql_unchanged_is_refused():
    compiled = CompiledQuery(lambda name: Supplier.objects.filter(name__icontains=name), names=("name",))

    with pytest.raises(ValueError, match="do not all reach the SQL"):
        compiled.run(name="Mail")


def incident(**extra):
    return Incident(
        title="Payroll file sent to the wrong recipient",
        detection_source="staff_escalation",
        detected_at=datetime(2026, 5, 1, 9, 30, 0, 123456, tzinfo=UTC),
        data_categories=["identity"],
        records_affected=12,
        **extra,
    )


@pytest.mark.django_db
def test_an_inserted_row_is_the_row_save_stores():
    supplier = Supplier.objects.create(name="MailCo")
    saved, inserted = incident(sub_processor=supplier), incident(sub_processor=supplier)

    saved.save()
    with assert_query_count(1, "one INSERT") as log:
        insert_instance(inserted)

    assert log.statements[0].startswith("INSERT")
    assert inserted.pk is not None and inserted.pk != saved.pk and not inserted._state.adding
    stored = Incident.objects.filter(pk__in=[saved.pk, inserted.pk]).values(*COLUMNS, "id")
    rows = {row.pop("id"): row for row in stored}
    for name in ("created_at", "updated_at"):  # auto_now_add: each its own instant
        assert rows[inserted.pk].pop(name) >= rows[saved.pk].pop(name)
    assert rows[inserted.pk] == rows[saved.pk]
    assert inserted.state == "detected"


@pytest.mark.django_db
def test_a_derived_column_is_written_with_the_row_or_updated_after_it():
    with_id, without_id = incident(), incident()
    with_id.pk = 990001

    insert_instance(with_id, derived={"reference": lambda row: f"R-{row.created_at.year}-{row.pk}"})
    insert_instance(without_id, derived={"reference": lambda row: f"R-{row.pk}"})

    assert Incident.objects.get(pk=990001).reference == f"R-{with_id.created_at.year}-990001"
    assert Incident.objects.get(pk=without_id.pk).reference == f"R-{without_id.pk}"


@pytest.mark.django_db
def test_a_model_with_save_receivers_is_saved_by_the_orm():
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=Supplier)
    try:
        supplier = Supplier(name="MailCo")
        insert_instance(supplier)
    finally:
        post_save.disconnect(receiver, sender=Supplier)

    assert heard == [(supplier.pk, True)]
    assert Supplier.objects.get(pk=supplier.pk).name == "MailCo"


@pytest.mark.django_db
def test_a_compiled_query_takes_integer_values_too(responder, manager):
    api_token_create(user=responder, name="siem", lifetime=timedelta(days=1))
    api_token_create(user=manager, name="siem", lifetime=timedelta(days=2))
    compiled = CompiledQuery(
        lambda user_id, name: ApiToken.objects.filter(user_id=user_id, name=name).order_by("pk"),
        names=("name",),
        integers=("user_id",),
    )

    for user in (responder, manager):
        got = compiled.run(user_id=user.pk, name="siem")
        assert [token.user_id for token in got] == [user.pk]
    assert compiled.run(user_id=responder.pk, name="importer") == []
