"""Actions on a post-mortem that has not begun (issue 8.5): each answers 404 with the page that
says so, never a 500 from rendering a post-mortem that is not there, and changes nothing."""

import pytest
from django.urls import reverse

ACTIONS = [
    ("postmortems:post_mortem_complete", "incident_manager", {}),
    ("postmortems:post_mortem_review", "auditor", {"review-note": "Looks fine."}),
    ("postmortems:post_mortem_summary_into_notice", "incident_manager", {}),
    ("postmortems:post_mortem_summary_into_notice", "incident_manager", {"notice": "1"}),
    ("postmortems:action_item_add", "incident_manager", {"item-description": "Add checks"}),
    ("postmortems:post_mortem_complete", "superuser", {}),
    ("postmortems:post_mortem_review", "superuser", {}),
    ("postmortems:action_item_add", "superuser", {}),
]


@pytest.mark.parametrize("state", ["triaged", "notified"])
@pytest.mark.parametrize(("route", "role", "body"), ACTIONS)
def test_it_answers_404_saying_no_post_mortem_yet(
    client, make_incident, personas, superuser, state, route, role, body
):
    from incidents.models import AuditEvent
    from postmortems.models import ActionItem, PostMortem

    incident = make_incident(state=state)
    events_before = AuditEvent.objects.filter(incident=incident).count()
    client.force_login(superuser if role == "superuser" else personas[role])

    response = client.post(reverse(route, args=[incident.pk]), body)

    assert response.status_code == 404
    assert "No post-mortem yet" in response.content.decode()
    assert not PostMortem.objects.filter(incident=incident).exists()
    assert not ActionItem.objects.exists()
    assert AuditEvent.objects.filter(incident=incident).count() == events_before
