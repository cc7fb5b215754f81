"""The README's role table ("Roles and permissions") is what the code enforces (issue 8.5): each
row's permissions are held by exactly the groups it ticks, every permission a role group holds
is in the table, every lifecycle transition has its row with the permission the lifecycle
checks, and the services refuse a transition to a role the table does not give it."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from incidents import services
from incidents.exceptions import ActionForbidden
from incidents.models import TRANSITION_PERMISSIONS
from incidents.roles import ROLE_GROUPS

README = Path(__file__).resolve().parents[1] / "README.md"


def role_table() -> list[dict]:
    """The rows of the table under "## Roles and permissions": ``{"what", "permissions": [...],
    group: bool for each of ROLE_GROUPS}``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Roles and permissions\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["what", "permissions", *ROLE_GROUPS], header
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        marks = cells[2:]
        assert set(marks) <= {"✓", "—"}, line
        rows.append(
            {
                "what": cells[0],
                "permissions": re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[1]),
                **{group: mark == "✓" for group, mark in zip(ROLE_GROUPS, marks, strict=True)},
            }
        )
    return rows


def group_permissions() -> dict[str, set[str]]:
    return {
        group.name: {
            f"{p.content_type.app_label}.{p.codename}"
            for p in group.permissions.select_related("content_type")
        }
        for group in Group.objects.filter(name__in=ROLE_GROUPS)
    }


@pytest.mark.django_db
def test_it_ticks_exactly_the_groups_that_hold_each_permission():
    held = group_permissions()
    wrong = []
    for row in role_table():
        assert row["permissions"], f"row {row['what']!r} names no permission"
        for permission in row["permissions"]:
            for group in ROLE_GROUPS:
                if (permission in held[group]) != row[group]:
                    wrong.append(
                        f"{permission} ({row['what']}): README says {group} {'may' if row[group] else 'may not'}, "
                        f"the group {'lacks' if row[group] else 'holds'} it"
                    )
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
def test_it_lists_every_permission_a_role_group_holds():
    listed = {permission for row in role_table() for permission in row["permissions"]}
    held = set().union(*group_permissions().values())

    assert held - listed == set(), "add these to the README's role table"


def test_it_has_a_row_for_every_transition_naming_the_permission_the_lifecycle_checks():
    rows = {row["what"]: row for row in role_table()}
    for name, permission in TRANSITION_PERMISSIONS.items():
        row = next((row for what, row in rows.items() if what.startswith(f"transition `{name}`")), None)
        assert row is not None, f"the README's role table has no row 'transition `{name}`'"
        assert row["permissions"] == [permission], (name, row["permissions"])


def test_it_gives_begin_post_mortem_to_incident_managers_only():
    row = next(row for row in role_table() if row["what"].startswith("transition `begin_post_mortem`"))

    assert (row["responder"], row["incident_manager"], row["auditor"]) == (False, True, False)


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_it_lets_each_role_take_begin_post_mortem_only_as_the_table_says(role, make_incident, personas):
    from incidents.models import IncidentState

    row = next(row for row in role_table() if row["what"].startswith("transition `begin_post_mortem`"))
    incident = make_incident(state="notified")

    if row[role]:
        assert services.incident_begin_post_mortem(incident=incident, actor=personas[role]).state == (
            IncidentState.POST_MORTEM
        )
    else:
        with pytest.raises(ActionForbidden):
            services.incident_begin_post_mortem(incident=incident, actor=personas[role])
        incident.refresh_from_db()
        assert incident.state == IncidentState.NOTIFIED


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_it_checks_each_transition_s_permission_as_the_table_says(role, personas):
    for row in role_table():
        if not row["what"].startswith("transition `"):
            continue
        (permission,) = row["permissions"]
        assert personas[role].has_perm(permission) is row[role], (role, row["what"])


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_it_refuses_begin_post_mortem_on_the_web_and_the_api_to_the_roles_the_table_does_not_give_it(
    role, client, make_incident, personas
):
    from incidents.models import IncidentState

    row = next(row for row in role_table() if row["what"].startswith("transition `begin_post_mortem`"))
    incident = make_incident(state="notified")
    client.force_login(personas[role])

    web = client.post(f"/incidents/{incident.pk}/transitions/begin_post_mortem/")
    api = client.post(
        f"/api/incidents/{incident.pk}/transitions/begin_post_mortem/", {}, content_type="application/json"
    )

    incident.refresh_from_db()
    if row[role]:
        assert incident.state == IncidentState.POST_MORTEM
    else:
        assert (web.status_code, api.status_code) == (403, 403)
        assert incident.state == IncidentState.NOTIFIED
