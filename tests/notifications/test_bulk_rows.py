"""``incidents.bulk.insert_rows`` (COPY on PostgreSQL) writes the rows ``bulk_create`` writes:
the fan-out's messages and deliveries, awkward bytes and text included. Runs on either
database; CI runs it on PostgreSQL, where the COPY path is taken."""

from django.db.models import Model

from incidents.bulk import insert_rows
from notifications.models import Delivery, NoticeMessage
from notifications.services import notice_draft
from tests.notifications.support import approve

#: Text and bytes that COPY's text format must escape: tab, backslash, CR, LF, NUL (bytes only).
AWKWARD_TEXT = "tab\there, back\\slash \\N, line\r\nbreak, Straße, 東京"
AWKWARD_BYTES = b"\x00\\x00\t\r\n.\r\n\xff" + AWKWARD_TEXT.encode()


def _columns(model: type[Model], pk: int, *leave_out: str) -> dict:
    row = model._default_manager.filter(pk=pk).values().get()
    for name in ("id", *leave_out):
        row.pop(name)
    return {name: bytes(value) if isinstance(value, memoryview) else value for name, value in row.items()}


def test_insert_rows_writes_what_bulk_create_writes(declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers)
    notice = approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    delivery = Delivery.objects.filter(notice=notice).order_by("id").first()
    assert delivery is not None and delivery.notice_message_id is not None

    message_row = {
        "notice_id": notice.pk,
        "customer_id": delivery.customer_id,
        "language": "xx",
        "subject": AWKWARD_TEXT[:60],
        "body_text": AWKWARD_TEXT,
        "body_html": "<p>" + AWKWARD_TEXT + "</p>",
        "subject_header": "Subject: x\r\n",
        "mime": AWKWARD_BYTES,
    }
    [copied_id] = insert_rows(NoticeMessage, [message_row], with_ids=True)
    created = NoticeMessage.objects.bulk_create([NoticeMessage(**{**message_row, "language": "yy"})])[0]
    assert copied_id != created.pk
    assert NoticeMessage.objects.get(pk=copied_id).mime == AWKWARD_BYTES
    assert _columns(NoticeMessage, copied_id, "language") == _columns(NoticeMessage, created.pk, "language")

    # A delivery row as the creation writes it: defaults (status, attempts, claim fields, bodies)
    # left to the fields, a NULL foreign key, the threading texts.
    now = delivery.created_at
    delivery_row = {
        "notice_id": notice.pk,
        "contact_id": delivery.contact_id,
        "customer_id": delivery.customer_id,
        "address": delivery.address,
        "language": "xx",
        "subject": AWKWARD_TEXT[:60],
        "notice_message_id": None,
        "message_id": "<copied@example.com>",
        "in_reply_to": "<a@example.com>",
        "references": "<a@example.com> <b@example.com>",
        "next_attempt_at": now,
        "created_at": now,
    }
    Delivery.objects.filter(pk=delivery.pk).delete()  # one delivery per (notice, contact)
    assert insert_rows(Delivery, [delivery_row]) == []
    copied = Delivery.objects.get(message_id="<copied@example.com>")
    expected = _columns(Delivery, copied.pk, "message_id")
    copied.delete()
    created_delivery = Delivery.objects.bulk_create([Delivery(**delivery_row)])[0]
    assert _columns(Delivery, created_delivery.pk, "message_id") == expected
    assert expected["status"] == "pending" and expected["attempts"] == 0 and expected["body_text"] == ""


def test_insert_rows_returns_the_ids_in_the_rows_order(declare_for, multilingual_customers, manager):
    incident = declare_for(multilingual_customers)
    notice = approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    customer_id = NoticeMessage.objects.filter(notice=notice).values_list("customer_id", flat=True)[0]
    rows = [
        {
            "notice_id": notice.pk,
            "customer_id": customer_id,
            "language": f"l{n}",
            "subject": f"subject {n}",
            "body_text": "",
            "body_html": "",
            "subject_header": "",
            "mime": b"",
        }
        for n in range(5)
    ]
    ids = insert_rows(NoticeMessage, rows, with_ids=True)
    assert [NoticeMessage.objects.get(pk=pk).language for pk in ids] == ["l0", "l1", "l2", "l3", "l4"]
