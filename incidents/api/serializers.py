"""Serializers of the REST API: they validate input and shape output; they never write.

Every write goes through ``incidents.services`` (incidents, affected customers, transitions);
customers and contacts, plain register entries without lifecycle or audit chain, are saved by
their model serializers. Common rules for every input:

- instants need a timezone offset (``AwareDateTimeField``): ``2026-05-01T09:30:00Z`` or
  ``...+02:00``; a naive one is refused with "timezone offset required". Instants are returned
  in UTC with a ``Z`` suffix.
- a key the serializer does not accept is refused with 400 naming it (``StrictFieldsMixin``):
  unknown keys get "Unknown field.", read-only ones "This field is read-only."
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.addresses import normalise_email, validate_email_address
from incidents.api.problems import ProblemSerializer
from incidents.lifecycle import TRANSITION_NAMES
from incidents.models import (
    AffectedCustomer,
    Contact,
    Customer,
    DataCategory,
    DataSubjectCategory,
    Incident,
    LikelyConsequence,
    Product,
    ReadLogEntry,
    Supplier,
)

# Input rules shared by every serializer ------------------------------------------------------


def username_field(*, allow_null: bool = True) -> serializers.SlugRelatedField[AbstractBaseUser]:
    """A read-only field that shows a user (who declared, added, approved ...) by username;
    null when nobody is recorded (``allow_null`` says so in the API schema). Nullable by
    default: every user reference is ``SET_NULL`` and most are empty until something happens
    (schemathesis found ``declared_by`` and others null against a non-null schema)."""
    return serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=allow_null)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 instant that must carry its timezone offset; returned in UTC (``...Z``).

    Input: ``2026-05-01T09:30:00Z`` or ``2026-05-01T11:30:00+02:00`` (converted to UTC).
    Errors (400): no offset ("timezone offset required"), a bad format, a date instead of an
    instant, or an instant outside the representable range once converted to UTC.
    """

    default_error_messages = {
        "naive": (
            "timezone offset required: give the instant with Z or an offset, "
            "for example 2026-05-01T09:30:00Z or 2026-05-01T11:30:00+02:00."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)

    def enforce_timezone(self, value: datetime) -> datetime:
        # Reading a naive instant in some default zone would silently guess; refuse instead.
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class StrictFieldsMixin(serializers.Serializer):
    """Refuse input keys that the serializer does not accept (400 naming each of them).

    A key that is not a field at all gets "Unknown field."; a read-only field gets
    ``read_only_messages[name]`` or "This field is read-only.". Non-mapping input is left to
    the serializer's own "expected a dictionary" error. It subclasses ``Serializer`` (and comes
    first in the bases) so that ``self.fields`` and the ``super()`` call are typed.
    """

    read_only_messages: Mapping[str, str] = {}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            # An input-only serializer checks the keys against its unbound blueprints (only
            # their kind and options are read), so it need not copy every field (FieldsCacheMixin).
            input_blueprint = getattr(self, "_input_blueprint", None)
            blueprint = input_blueprint() if input_blueprint is not None else None
            fields = blueprint if blueprint is not None else self.fields
            errors: dict[str, list[str]] = {}
            for key in data:
                field = fields.get(key)
                if field is None and key in type(self).__dict__.get("_read_only_field_names", ()):
                    # A read-only field an input-only serializer does not build (FieldsCacheMixin).
                    message = self.read_only_messages.get(key, "This field is read-only.")
                    errors[str(key)] = [message]
                elif field is None:
                    message = self.read_only_messages.get(key, "Unknown field.")
                    errors[str(key)] = [message]
                elif field.read_only:
                    message = self.read_only_messages.get(key, "This field is read-only.")
                    errors[str(key)] = [message]
                else:
                    wrong_type = _wrong_json_type(field, data[key])
                    if wrong_type:
                        errors[str(key)] = [wrong_type]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _wrong_json_type(field: serializers.Field, value: Any) -> str | None:
    """The message for a JSON value of the wrong type for ``field`` (DRF would coerce it: the
    number 5 into the text "5", the text "5" into the number 5), or ``None``. The API reads JSON
    only, so types are what the schema says."""
    if value is None:
        return None
    if value == "" and (
        isinstance(field, serializers.RelatedField) or not getattr(field, "allow_blank", True)
    ):
        # DRF reads "" as "not given" (a form or query string) or as null (a relation).
        return "This field may not be blank."
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, serializers.FloatField):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "Must be a number."
    if isinstance(
        field,
        serializers.CharField | serializers.ChoiceField | serializers.DateField | serializers.DateTimeField,
    ):
        return None if isinstance(value, str) else "Must be a string."
    return None


class BlankChoicesMixin:
    """Read-only choice fields of a blank model field keep ``allow_blank``, so the schema's
    enum includes the ``""`` they return (DRF drops it from read-only fields)."""

    def build_standard_field(self, field_name: str, model_field: Any) -> Any:
        field_class, kwargs = super().build_standard_field(field_name, model_field)  # type: ignore[misc]
        if "choices" in kwargs and getattr(model_field, "blank", False):
            self.__dict__.setdefault("_blank_choices", set()).add(field_name)
        return field_class, kwargs

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()  # type: ignore[misc]
        for name in self.__dict__.get("_blank_choices", ()):
            if name in fields and isinstance(fields[name], serializers.ChoiceField):
                fields[name].allow_blank = True
                fields[name]._kwargs["allow_blank"] = True  # kept by a deepcopy of the field
        return fields


#: Attribute types ``fresh_field`` shares as they are; ``_CONTAINERS`` it copies.
_UNCHANGEABLE = frozenset({str, int, float, bool, type(None), tuple, frozenset, type(serializers.empty)})
_CONTAINERS = frozenset({dict, list, set})


#: How ``fresh_field`` gives a copy its own version of an attribute.
_DEEP, _METHOD_COPY, _COPY, _CHILD = range(4)

#: Per blueprint field: ``(attribute name, how)`` for each attribute a copy must not share
#: (computed once: a blueprint never changes after its class built it).
_copy_plans: weakref.WeakKeyDictionary[serializers.Field, tuple[tuple[str, int], ...]] = (
    weakref.WeakKeyDictionary()
)


def _copy_plan(blueprint: serializers.Field) -> tuple[tuple[str, int], ...]:
    plan = []
    for name, value in blueprint.__dict__.items():
        kind = type(value)
        if kind in _UNCHANGEABLE:
            continue
        if name in ("default", "initial"):
            if isinstance(value, dict | list | set):
                plan.append((name, _DEEP))
        elif kind in _CONTAINERS:
            plan.append((name, _METHOD_COPY))
        elif isinstance(value, dict | list | set):
            plan.append((name, _COPY))
    for name in ("child", "child_relation"):
        if isinstance(blueprint.__dict__.get(name), serializers.Field):
            plan.append((name, _CHILD))
    return tuple(plan)


def fresh_field(blueprint: serializers.Field) -> serializers.Field:
    """An unbound copy of the unbound field ``blueprint``, as ``copy.deepcopy`` would give
    (DRF builds every serializer instance's fields so), in a fiftieth of the time.

    ``copy.deepcopy`` of a DRF field calls its ``__init__`` again with deep copies of its
    arguments (querysets, choices, messages); this copies the field's attributes instead and
    gives the copy its own version of everything a field or its user may change in place:
    the dicts ``error_messages``, ``style`` and ``_kwargs``, the ``validators`` list (the
    validators themselves are shared, as DRF shares them), a list, dict or set ``default`` or
    ``initial``, and a child field (``child``, ``child_relation``: copied in turn, with the
    copy as its parent). A relation's queryset is shared: DRF never evaluates it, it reads it
    through ``get_queryset()``, which takes ``.all()`` of it each time. Which
    attributes those are is worked out once per blueprint (``_copy_plan``). A nested
    serializer is deep-copied as DRF does.
    """
    if isinstance(blueprint, serializers.BaseSerializer):
        return copy.deepcopy(blueprint)
    plan = _copy_plans.get(blueprint)
    if plan is None:
        plan = _copy_plans[blueprint] = _copy_plan(blueprint)
    clone = object.__new__(type(blueprint))
    state = clone.__dict__
    state.update(blueprint.__dict__)
    for name, how in plan:
        value = state[name]
        if how == _METHOD_COPY:
            state[name] = value.copy()
        elif how == _CHILD:
            # Bound by the blueprint's __init__ (field name ""): only the parent changes.
            copied = fresh_field(value)
            copied.parent = clone  # type: ignore[assignment]  # a field's parent may be a field
            state[name] = copied
        elif how == _DEEP:
            state[name] = copy.deepcopy(value)
        else:  # _COPY
            state[name] = copy.copy(value)
    return clone


class FieldsCacheMixin:
    """Builds a model serializer's fields once per class and copies them per instance
    (``fresh_field``), as DRF deep-copies declared fields. ``ModelSerializer.get_fields``
    introspects the model anew for every serializer instance; for the incident (48 fields)
    that was a fifth of a create's CPU, and ``copy.deepcopy`` of the built fields still 1.4 ms
    per serializer. Fields depend only on the class (``Meta``, declared fields), never on the
    instance, data or context, so the copy is the same as a fresh build."""

    #: A serializer that only reads input (a create's body) builds no read-only field: their
    #: names are kept (``_read_only_field_names``) so that a body naming one is still told
    #: "This field is read-only." (``StrictFieldsMixin``), and the schema of a request body
    #: (``COMPONENT_SPLIT_REQUEST``) lists writable fields only anyway.
    input_only = False

    def get_fields(self) -> dict[str, Any]:
        return {name: fresh_field(field) for name, field in self._blueprint().items()}

    def _input_blueprint(self) -> Mapping[str, Any] | None:
        """The unbound fields, for an input-only serializer (``None`` otherwise)."""
        return self._blueprint() if self.input_only else None

    @property
    def _writable_fields(self) -> Any:
        """DRF's writable fields; for an input-only serializer reading a JSON body, without
        the optional fields the body leaves out. DRF would copy and bind each of them only
        for it to skip them: a missing key gives ``empty``, and an optional field without a
        default skips ``empty`` (``SkipField``: no value, no ``validate_<name>``). A field
        whose class reads its value or its absence another way is kept."""
        data = getattr(self, "initial_data", None)
        if not self.input_only or not isinstance(data, dict) or "fields" in self.__dict__:
            yield from super()._writable_fields  # type: ignore[misc]
            return
        for name, blueprint in self._blueprint().items():
            if blueprint.read_only:
                continue
            if name not in data and _skipped_when_missing(blueprint):
                continue
            field = fresh_field(blueprint)
            field.bind(field_name=name, parent=self)  # type: ignore[arg-type]
            yield field

    def _read_only_defaults(self) -> dict[str, Any]:
        # An input-only serializer builds no read-only field, so it has no read-only default
        # (DRF's version builds every field to find that out).
        if self.input_only and "fields" not in self.__dict__:
            return {}
        return super()._read_only_defaults()  # type: ignore[misc]

    def _blueprint(self) -> dict[str, Any]:
        cls = type(self)
        cached = cls.__dict__.get("_fields_blueprint")
        if cached is None:
            built = super().get_fields()  # type: ignore[misc]
            cls._read_only_field_names = frozenset(  # type: ignore[attr-defined]
                name for name, field in built.items() if field.read_only
            )
            cached = {
                name: field for name, field in built.items() if not (self.input_only and field.read_only)
            }
            cls._fields_blueprint = cached  # type: ignore[attr-defined]
        return cached


#: ``get_value`` implementations that give ``empty`` for a key a JSON body leaves out.
_PLAIN_GET_VALUE = (
    serializers.Field.get_value,
    serializers.ListField.get_value,
    serializers.ManyRelatedField.get_value,
)


def _skipped_when_missing(field: serializers.Field) -> bool:
    """Whether DRF skips ``field`` (``SkipField``) when a JSON body leaves its key out: not
    required, no default, and DRF's own reading of a value and of its absence."""
    kind = type(field)
    return (
        not field.required
        and field.default is serializers.empty
        and kind.get_value in _PLAIN_GET_VALUE
        and kind.validate_empty_values is serializers.Field.validate_empty_values
        and kind.get_default is serializers.Field.get_default
    )


class StrictModelSerializer(
    StrictFieldsMixin, FieldsCacheMixin, BlankChoicesMixin, serializers.ModelSerializer
):
    """A ``ModelSerializer`` with strict keys and ``AwareDateTimeField`` for every instant."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: AwareDateTimeField,
    }


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    """A plain ``Serializer`` with strict keys (for request bodies that are not a model)."""


# Customers and contacts ------------------------------------------------------------------------


class CustomerSerializer(StrictModelSerializer):
    """A customer (the controller). ``notification_window_hours``: 1 to 72 hours.
    ``is_drill_customer``: exists for drills only (only drills may affect it, and drills notify
    no other customer); it cannot change once an incident affects the customer.

    Read-only: ``deliverable`` (bool: at least one deliverable administrative contact, see
    ``incidents.readiness``), ``unconfirmed`` (bool: marked unconfirmed),
    ``contacts_confirmation_requested_at``, ``contacts_confirmed_at`` and
    ``contacts_unconfirmed_since`` (UTC instants or null).
    """

    deliverable = serializers.SerializerMethodField()
    unconfirmed = serializers.BooleanField(source="is_unconfirmed", read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "account_reference",
            "country",
            "preferred_language",
            "notification_window_hours",
            "is_drill_customer",
            "created_at",
            "deliverable",
            "unconfirmed",
            "contacts_confirmation_requested_at",
            "contacts_confirmed_at",
            "contacts_unconfirmed_since",
        ]
        read_only_fields = [
            "id",
            "created_at",
            "contacts_confirmation_requested_at",
            "contacts_confirmed_at",
            "contacts_unconfirmed_since",
        ]

    def get_deliverable(self, customer: Customer) -> bool:
        annotated = getattr(customer, "has_deliverable_contact", None)
        if annotated is not None:
            return bool(annotated)
        return Contact.objects.deliverable().filter(customer=customer).exists()

    def validate_account_reference(self, value: str) -> str:
        """Unique in any case (``demo-en-001`` next to ``DEMO-EN-001`` made lookups ambiguous):
        a case variant of another customer's reference is a conflict (409)."""
        others = Customer.objects.filter(account_reference__iexact=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        existing = others.values_list("account_reference", flat=True).first()
        if existing is not None:
            raise serializers.ValidationError(
                f"Another customer already has the account reference {existing!r}; "
                "references are unique in any case.",
                code="unique",
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's own rule on ``is_drill_customer`` (``Customer.clean``), as a 400."""
        attrs = super().validate(attrs)
        if self.instance is not None and "is_drill_customer" in attrs:
            probe = Customer(pk=self.instance.pk, is_drill_customer=attrs["is_drill_customer"])
            try:
                probe.clean()
            except DjangoValidationError as error:
                raise serializers.ValidationError(error.message_dict) from None
        return attrs


@extend_schema_field({"type": "string", "format": "email", "maxLength": 254})
class EmailAddressSerializerField(serializers.CharField):
    """An email address as ``incidents.addresses.validate_email_address`` accepts it: an IDNA
    domain, or a non-ASCII local part (RFC 6531), which DRF's own ``EmailField`` refuses."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(validate_email_address)


class ContactSerializer(StrictModelSerializer):
    """A person at a customer whom we notify; ``customer`` is the customer's id.

    ``language`` empty: the customer's preferred language. The email is unique per customer
    (any case). Read-only: ``deliverable`` (notices go to it), ``undeliverable_at`` and
    ``undeliverable_reason`` (its mail server refused it for good; a staff edit clears them),
    ``pending_confirmation`` (added through a confirmation link, not counted until its address
    confirms), ``confirmed_at``. Writes go through ``services.contact_create`` and
    ``services.contact_update`` (audited on the customer's chain).
    """

    deliverable = serializers.BooleanField(source="is_deliverable", read_only=True)
    #: An IDNA domain or a non-ASCII local part (RFC 6531) is accepted: DRF's own EmailField
    #: refuses the latter. Stored normalised (``incidents.addresses.normalise_email``).
    email = EmailAddressSerializerField(max_length=254)

    def validate_email(self, value: str) -> str:
        return normalise_email(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """An address the customer already has in another case (``Olivia.Bennett@`` next to
        ``olivia.bennett@``, which then got every notice twice) is a conflict (409)."""
        attrs = super().validate(attrs)
        customer = attrs.get("customer", getattr(self.instance, "customer", None))
        address = attrs.get("email")
        if customer is not None and address is not None:
            others = Contact.objects.filter(customer=customer, email__iexact=address)
            if self.instance is not None:
                others = others.exclude(pk=self.instance.pk)
            existing = others.values_list("email", flat=True).first()
            if existing is not None:
                raise serializers.ValidationError(
                    {
                        "email": [
                            f"{existing} is already a contact of this customer (email addresses are compared in any case)."
                        ]
                    },
                    code="unique",
                )
        return attrs

    class Meta:
        model = Contact
        fields = [
            "id",
            "customer",
            "name",
            "email",
            "language",
            "role",
            "is_active",
            "created_at",
            "deliverable",
            "undeliverable_at",
            "undeliverable_reason",
            "pending_confirmation",
            "confirmed_at",
        ]
        read_only_fields = [
            "id",
            "created_at",
            "undeliverable_at",
            "undeliverable_reason",
            "pending_confirmation",
            "confirmed_at",
        ]


class ReadinessSerializer(serializers.Serializer):
    """``GET /api/customers/readiness/``: the counts of ``incidents.readiness.ReadinessFigures``."""

    customers_unreachable = serializers.IntegerField(help_text="Customers with no deliverable contact.")
    customers_unconfirmed = serializers.IntegerField(help_text="Customers marked unconfirmed.")
    contacts_undeliverable = serializers.IntegerField(help_text="Active administrative contacts refused.")
    contacts_pending_confirmation = serializers.IntegerField(help_text="New addresses not confirmed yet.")


# Incidents -------------------------------------------------------------------------------------

#: State -> ((transition name, permission), ...) leaving that state, in lifecycle order.
_TRANSITIONS_FROM: dict[str, list[tuple[str, str | None]]] = {}


def _transitions_from(state: str) -> list[tuple[str, str | None]]:
    if not _TRANSITIONS_FROM:
        field = Incident._meta.get_field("state")
        order = {name: index for index, name in enumerate(TRANSITION_NAMES)}
        for transition in field.get_all_transitions(Incident):
            if transition.name not in order:
                continue  # ``merge`` names a second incident: its own route, not transitions/
            permission = transition.permission
            # Every transition names a permission codename (TRANSITION_PERMISSIONS); django-fsm's
            # callable form is not used, and ``available_transitions`` does not support it.
            assert permission is None or isinstance(permission, str)
            _TRANSITIONS_FROM.setdefault(str(transition.source), []).append((transition.name, permission))
        for entries in _TRANSITIONS_FROM.values():
            entries.sort(key=lambda entry: order[entry[0]])
    return _TRANSITIONS_FROM.get(str(state), [])


def available_transitions(
    incident: Incident, user: Any, permissions: frozenset[str] | None = None
) -> list[str]:
    """Names of the transitions leaving ``incident``'s current state that ``user``'s role allows,
    in lifecycle order. Guards are not checked: the transition's request body may supply what
    they need. No database query beyond the user's (cached) permissions.

    ``permissions``: the user's permissions as ``user_permissions`` gives them, when the caller
    asks for many incidents (a list); without it each name is checked with ``user.has_perm``."""
    if user is None or not user.is_authenticated:
        return []
    allowed = user.has_perm if permissions is None else permissions.__contains__
    return [
        name
        for name, permission in _transitions_from(incident.state)
        if permission is None or allowed(permission)
    ]


class _Everything(frozenset[str]):
    """The permissions of an active superuser: every permission (``in`` is always true)."""

    def __contains__(self, item: object) -> bool:
        return True


def user_permissions(user: Any) -> frozenset[str]:
    """``user``'s permissions (``"app_label.codename"``) as ``user.has_perm`` decides them: none
    when inactive or anonymous, every one for an active superuser, else the union the
    authentication backends give (``get_all_permissions``, cached on the user by Django)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return _Everything()
    return frozenset(user.get_all_permissions())


class IncidentSerializer(StrictModelSerializer):
    """An incident as listed, created and edited (``source_record`` only in the detail).

    Writable (create and PATCH, through ``services.incident_create`` / ``incident_update``):
    ``title`` and ``detection_source`` (required on create), ``summary``, ``detected_at``,
    ``occurred_on`` with ``occurred_on_precision``, ``reported_by``, ``owner`` (a username),
    ``scenario``, ``severity``, ``malicious``, ``is_drill``, and the breach fields
    ``nature_of_breach``, ``mitigation_measures``, ``products`` (existing product names),
    ``exposure_started_at``, ``exposure_ended_at``, ``records_affected``,
    ``records_affected_is_estimate``, ``data_categories`` (``DataCategory`` values; null:
    unknown), ``data_subject_categories`` (``DataSubjectCategory`` values; null: unknown),
    ``data_subjects_affected`` with ``data_subjects_affected_is_estimate`` (the approximate
    number of data subjects, GDPR Art. 33(3)(a); null: unknown), ``likely_consequences``
    (``LikelyConsequence`` values), ``adverse_effect_measures`` (text, Art. 33(3)(d)),
    ``sub_processor`` (a supplier id), ``sub_processor_details`` and
    ``incident_figures_shareable`` (notices may state the incident-wide counts; incident
    managers only: ``incidents.share_incident_figures``, else 403).
    Read-only: everything else. ``state`` changes only through
    ``POST /api/incidents/{id}/transitions/{name}/``; a body naming it gets 400.
    ``exposure_duration_hours``: hours (float) between the exposure's start and end, null when
    either is unknown. ``affected_customers``: the affected customers' account references.
    ``available_transitions``: transition names the requesting user may take from the current
    state. Instants are UTC.
    """

    read_only_messages = {
        "state": ("State changes only through transitions: POST /api/incidents/{id}/transitions/{name}/."),
    }

    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        allow_null=True,
        required=False,
    )
    declared_by = username_field()
    merged_into: serializers.PrimaryKeyRelatedField[Incident] = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The surviving incident this duplicate was merged into (state merged); null otherwise.",
    )
    merged_at = serializers.DateTimeField(read_only=True, allow_null=True)
    products = serializers.SlugRelatedField(
        slug_field="name", queryset=Product.objects.all(), many=True, required=False
    )
    sub_processor = serializers.PrimaryKeyRelatedField(
        queryset=Supplier.objects.all(), allow_null=True, required=False
    )
    data_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=DataCategory.choices),
        allow_null=True,
        required=False,
        help_text="DataCategory values; null: unknown.",
    )
    data_subject_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=DataSubjectCategory.choices),
        allow_null=True,
        required=False,
        help_text="DataSubjectCategory values; null: unknown (GDPR Art. 33(3)(a)).",
    )
    likely_consequences = serializers.ListField(
        child=serializers.ChoiceField(choices=LikelyConsequence.choices),
        allow_null=True,
        required=False,
        help_text="LikelyConsequence values; null: unknown (GDPR Art. 33(3)(c)).",
    )
    exposure_duration_hours = serializers.SerializerMethodField(
        help_text="Hours between exposure_started_at and exposure_ended_at; null when unknown."
    )
    affected_customers = serializers.SerializerMethodField(
        help_text="Account references of the affected customers."
    )
    available_transitions = serializers.SerializerMethodField(
        help_text="Transition names the requesting user may take from the current state."
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "reference",
            "state",
            "title",
            "summary",
            "detection_source",
            "detected_at",
            "occurred_on",
            "occurred_on_precision",
            "reported_by",
            "owner",
            "scenario",
            "severity",
            "malicious",
            "is_drill",
            "nature_of_breach",
            "mitigation_measures",
            "products",
            "exposure_started_at",
            "exposure_ended_at",
            "exposure_duration_hours",
            "records_affected",
            "records_affected_is_estimate",
            "data_categories",
            "data_subject_categories",
            "data_subjects_affected",
            "data_subjects_affected_is_estimate",
            "likely_consequences",
            "adverse_effect_measures",
            "sub_processor",
            "sub_processor_details",
            "incident_figures_shareable",
            "out_of_scope_category",
            "scope_rationale",
            "customer_informed_at",
            "triaged_at",
            "declared_at",
            "declared_by",
            "notified_at",
            "closed_at",
            "merged_into",
            "merged_at",
            "external_reference",
            "affected_customers",
            "available_transitions",
            "created_at",
            "updated_at",
        ]
        # external_reference's uniqueness per detection source is the service's to check (409
        # naming the incident that has it), not a 400 from a generated validator.
        validators: list[Any] = []
        read_only_fields = [
            "id",
            "reference",
            "state",
            "merged_into",
            "merged_at",
            "out_of_scope_category",
            "scope_rationale",
            "customer_informed_at",
            "triaged_at",
            "declared_at",
            "notified_at",
            "closed_at",
            "external_reference",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Refuse an exposure that ends before it starts (with a PATCH, against the stored other
        end); the model's check constraint backs this up under concurrent edits."""

        def value(name: str) -> datetime | None:
            return attrs[name] if name in attrs else getattr(self.instance, name, None)

        started, ended = value("exposure_started_at"), value("exposure_ended_at")
        if started is not None and ended is not None and ended < started:
            raise serializers.ValidationError(
                {"exposure_ended_at": ["The exposure cannot end before it started."]}
            )
        return attrs

    def get_exposure_duration_hours(self, incident: Incident) -> float | None:
        duration = incident.exposure_duration
        return None if duration is None else duration.total_seconds() / 3600

    def get_affected_customers(self, incident: Incident) -> list[str]:
        # Uses the view's prefetch (ordered by customer name) rather than one query per row.
        return [affected.customer.account_reference for affected in incident.affected_customers.all()]

    def get_available_transitions(self, incident: Incident) -> list[str]:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        # One permission set per serializer context (a listed page shares it), not one
        # has_perm round through the backends per transition and incident.
        context = cast(dict[str, Any], self.context)  # the view's own dict, shared by the page
        permissions = context.get("_user_permissions")
        if permissions is None:
            permissions = context["_user_permissions"] = user_permissions(user)
        return available_transitions(incident, user, permissions)


def incident_representation(incident_id: int, request: Any = None) -> dict[str, Any]:
    """The detail representation of an incident as stored now (what every transition answers)."""
    incident = (
        Incident.objects.select_related("owner", "declared_by")
        .prefetch_related("products", "affected_customers__customer")
        .get(pk=incident_id)
    )
    return IncidentDetailSerializer(incident, context={"request": request}).data


class IncidentDetailSerializer(IncidentSerializer):
    """An incident with ``source_record``: the whole record an imported incident came from
    (null for incidents recorded here)."""

    source_record = serializers.JSONField(read_only=True, allow_null=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "source_record"]


class IncidentCreateSerializer(IncidentDetailSerializer):
    """Body of ``POST /api/incidents/``: the writable fields of ``IncidentSerializer`` and
    ``external_reference``: the sending system's own id for this signal (up to 100
    characters), unique per ``detection_source``, so an importer can retry without creating
    twice (a taken one answers 409 naming the incident that has it)."""

    external_reference = serializers.CharField(max_length=100, required=False, allow_null=True)
    input_only = True

    class Meta(IncidentDetailSerializer.Meta):
        read_only_fields = [
            name for name in IncidentSerializer.Meta.read_only_fields if name != "external_reference"
        ]

    def validate_external_reference(self, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\x00" in value):
            raise serializers.ValidationError("Give a non-blank reference, or leave it out.")
        return value


# Transition bodies -----------------------------------------------------------------------------


class TriageBody(StrictSerializer):
    """``triage``: severity (ENISA band) and malicious (yes/no/unknown) unless already recorded;
    scenario optional."""

    severity = serializers.ChoiceField(choices=Incident.Severity.choices, required=False)
    malicious = serializers.ChoiceField(choices=Incident.Malicious.choices, required=False)
    scenario = serializers.ChoiceField(choices=Incident.Scenario.choices, required=False)


class RuleOutOfScopeBody(StrictSerializer):
    """``rule_out_of_scope``: the out-of-scope category and the rationale."""

    out_of_scope_category = serializers.ChoiceField(
        choices=Incident.OutOfScopeCategory.choices, required=False
    )
    scope_rationale = serializers.CharField(required=False, allow_blank=True)


class ClassifyAsCustomerEventBody(StrictSerializer):
    """``classify_as_customer_event``: the rationale and when the customer was informed (UTC)."""

    scope_rationale = serializers.CharField(required=False, allow_blank=True)
    customer_informed_at = AwareDateTimeField(required=False)


class DeclareBody(StrictSerializer):
    """``declare``: the nature of the breach unless already recorded (affected customers are
    added through ``/affected-customers/`` beforehand)."""

    nature_of_breach = serializers.CharField(required=False, allow_blank=True)


class EmptyBody(StrictSerializer):
    """``mark_notified``, ``begin_post_mortem`` and ``close`` take no body (``{}`` or nothing).
    Findings go into the post-mortem (``/api/incidents/{id}/post-mortem/``)."""


#: Transition name -> the serializer of its request body.
TRANSITION_BODIES: dict[str, type[StrictSerializer]] = {
    "triage": TriageBody,
    "rule_out_of_scope": RuleOutOfScopeBody,
    "classify_as_customer_event": ClassifyAsCustomerEventBody,
    "declare": DeclareBody,
    "mark_notified": EmptyBody,
    "begin_post_mortem": EmptyBody,
    "close": EmptyBody,
}


#: Error answers are RFC 9457 problems (``incidents.api.problems``); these names stay for the
#: views' ``extend_schema`` declarations.
ErrorSerializer = ProblemSerializer
GuardFailedSerializer = ProblemSerializer


# Affected customers ----------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class CustomerReferenceField(serializers.Field):
    """A customer given by id (a JSON integer) or account reference (a string).

    A string is looked up as an account reference first, then, if it is all digits, as an id
    (so ``?customer=12`` works). Errors (400): no such customer, or another type.
    """

    default_error_messages = {
        "does_not_exist": "No customer with id or account reference {value!r}.",
        "invalid": "Expected a customer id (integer) or account reference (string).",
    }

    def to_internal_value(self, data: Any) -> Customer:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        customers = Customer.objects.all()
        if isinstance(data, int):
            found = customers.filter(pk=data).first()
        else:
            text = data.strip()
            if not text or "\x00" in text:
                self.fail("invalid")
            found = customers.filter(account_reference=text).first()
            if found is None and text.isdigit() and text.isascii():
                found = customers.filter(pk=int(text)).first()
        if found is None:
            self.fail("does_not_exist", value=data)
        return found

    def to_representation(self, value: Customer) -> str:
        return value.account_reference


class CustomerSummarySerializer(serializers.ModelSerializer):
    """A customer's id, account reference and name."""

    class Meta:
        model = Customer
        fields = ["id", "account_reference", "name"]


class AffectedCustomerSerializer(serializers.ModelSerializer):
    """A customer affected by an incident, as listed and as returned after adding it.

    ``added_at``: when it was recorded (UTC); its notice clock is under
    ``/api/incidents/{id}/clocks/``. ``no_notice_reason``: why this customer gets no notice
    whatever is approved (a real customer affected by a drill), or null.
    """

    customer = CustomerSummarySerializer(read_only=True)
    added_by = username_field()
    added_at = AwareDateTimeField(read_only=True)
    no_notice_reason = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = AffectedCustomer
        fields = [
            "id",
            "customer",
            "records_affected",
            "records_affected_is_estimate",
            "data_subjects_affected",
            "data_subjects_affected_is_estimate",
            "exposure_started_at",
            "exposure_ended_at",
            "notes",
            "added_at",
            "added_by",
            "no_notice_reason",
        ]
        read_only_fields = fields


def _count_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=2**63 - 1, allow_null=True, required=False)


class AffectedCustomerFiguresBody(StrictSerializer):
    """The customer's own figures, told to that customer only: ``records_affected`` and
    ``data_subjects_affected`` (counts, null: unknown), each with ``..._is_estimate``, and the
    customer's own exposure window ``exposure_started_at`` / ``exposure_ended_at`` (instants
    with offset; null: the incident's window applies)."""

    customer = CustomerReferenceField()
    records_affected = _count_field()
    records_affected_is_estimate = serializers.BooleanField(required=False)
    data_subjects_affected = _count_field()
    data_subjects_affected_is_estimate = serializers.BooleanField(required=False)
    exposure_started_at = AwareDateTimeField(allow_null=True, required=False)
    exposure_ended_at = AwareDateTimeField(allow_null=True, required=False)
    notes = serializers.CharField(allow_blank=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        started, ended = attrs.get("exposure_started_at"), attrs.get("exposure_ended_at")
        if started is not None and ended is not None and ended < started:
            raise serializers.ValidationError(
                {"exposure_ended_at": ["The exposure cannot end before it started."]}
            )
        return attrs


class AffectedCustomerAddBody(AffectedCustomerFiguresBody):
    """Body of ``POST .../affected-customers/``: ``customer`` (id or account reference), the
    customer's own figures (``AffectedCustomerFiguresBody``) and ``notes``."""


class AffectedCustomerRemoveBody(StrictSerializer):
    """Body (or query string) of ``DELETE .../affected-customers/``: ``customer``."""

    customer = CustomerReferenceField()


class ReadLogEntrySerializer(serializers.ModelSerializer):
    """One record an auditor opened: who (``username``), when (``read_at``, UTC), the route's
    name (``route``), what it names (``object_type``, ``object_id``; empty for a list) and the
    path as requested (``path``)."""

    read_at = AwareDateTimeField(read_only=True)

    class Meta:
        model = ReadLogEntry
        fields = ["id", "username", "read_at", "route", "object_type", "object_id", "path"]
        read_only_fields = fields
