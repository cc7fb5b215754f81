"""Seeds the five stakeholder groups (with their alert rules and no addresses yet: admins add
them) and one response playbook per incident scenario.

The data is written out here, not imported from the app, so this migration stays what it was
when it landed. Existing rows (same group name or scenario) are left as the admins made them.
"""

from datetime import timedelta

from django.db import migrations

#: name -> (description, lowest band that calls for it, scenarios that always call for it)
STAKEHOLDER_GROUPS = {
    "privacy": (
        "Data protection officer and privacy team: told of every in-scope incident.",
        "low",
        [],
    ),
    "security": (
        "Information security: containment, forensics and technical measures.",
        "medium",
        [
            "malicious_insider",
            "unauthorised_access",
            "malware_or_ransomware",
            "lost_or_stolen_device",
        ],
    ),
    "legal": (
        "Legal counsel: contracts, liability, law enforcement, employment matters.",
        "high",
        ["malicious_insider", "supplier_breach"],
    ),
    "communications": (
        "Communications: press, public statements and customer-wide messages.",
        "very_high",
        ["accidental_publication"],
    ),
    "leadership": (
        "Leadership: business impact and decisions beyond the response team.",
        "very_high",
        ["malware_or_ransomware"],
    ),
}

#: scenario -> (title, description, [(description, due after hours, assignee role), ...])
PLAYBOOKS = {
    "misdirected_communication": (
        "Misdirected communication",
        "An email, letter or file went to the wrong recipient.",
        [
            (
                "Identify the recipients and exactly what was sent: which records and which data.",
                2,
                "",
            ),
            (
                "Ask the recipient to delete the data and to confirm the deletion in writing, "
                "including that no copy was kept or forwarded.",
                4,
                "",
            ),
            (
                "Recall the message where the mail system allows it; check whether it was forwarded.",
                4,
                "IT",
            ),
            (
                "Record the written confirmation of deletion (or its absence) on the incident.",
                24,
                "",
            ),
            (
                "Review how the wrong address was chosen (autocomplete, lists) and propose a fix.",
                72,
                "",
            ),
        ],
    ),
    "lost_or_stolen_device": (
        "Lost or stolen device",
        "A laptop, phone or storage medium holding or reaching personal data is missing.",
        [
            (
                "Confirm whether the device was encrypted (full-disk encryption on, key not with "
                "the device) and record the evidence.",
                2,
                "security",
            ),
            (
                "Trigger a remote wipe and lock; revoke the device's sessions, certificates and tokens.",
                2,
                "security",
            ),
            (
                "Establish which personal and customer data were on the device or reachable from it.",
                8,
                "",
            ),
            ("Reset the passwords of the accounts used on the device.", 8, "security"),
            ("Report a theft to the police and record the case number.", 24, ""),
        ],
    ),
    "malicious_insider": (
        "Malicious insider",
        "Someone with legitimate access misused it deliberately.",
        [
            (
                "Preserve evidence: secure logs, mailbox and device images before anyone is told.",
                2,
                "security",
            ),
            ("Involve legal and HR before any contact with the person concerned.", 4, "legal"),
            ("Suspend or restrict the person's access, coordinated with HR.", 4, "security"),
            ("Run a forensic investigation of what was accessed, copied or sent.", 24, "security"),
            ("Decide with legal whether to involve law enforcement.", 48, "legal"),
        ],
    ),
    "unauthorised_access": (
        "Unauthorised access",
        "Someone without a right to it reached personal data (account takeover, access control flaw).",
        [
            (
                "Contain: disable the compromised accounts or credentials and close the access path.",
                2,
                "security",
            ),
            ("Preserve the logs of the access window.", 4, "security"),
            (
                "Determine which records were accessed and whether data were copied out.",
                24,
                "security",
            ),
            (
                "Reset credentials and enforce multi-factor authentication where it was missing.",
                24,
                "security",
            ),
        ],
    ),
    "malware_or_ransomware": (
        "Malware or ransomware",
        "Malicious software encrypted, altered or exfiltrated data.",
        [
            ("Isolate the affected systems from the network.", 1, "security"),
            (
                "Check that backups are intact, offline and restorable; plan the restoration.",
                4,
                "IT",
            ),
            (
                "Check for exfiltration: outbound traffic, staging archives, mentions on leak sites.",
                24,
                "security",
            ),
            ("Identify the malware and the way in; patch or close it.", 24, "security"),
            (
                "Do not pay or negotiate without legal and leadership; report to law enforcement as advised.",
                24,
                "legal",
            ),
        ],
    ),
    "accidental_publication": (
        "Accidental publication",
        "Personal data were made public by mistake (web page, repository, open share link).",
        [
            ("Take the data down and ask search engines and caches to remove copies.", 2, ""),
            (
                "Establish how long the data were public and check access logs for downloads.",
                24,
                "security",
            ),
            ("Search for copies elsewhere (paste sites, search results).", 48, "security"),
        ],
    ),
    "supplier_breach": (
        "Supplier breach",
        "A supplier (sub-processor) reports or suffers a breach involving data we entrust to it.",
        [
            (
                "Check the sub-processor register: what the supplier processes for which customers, "
                "and the contract's notification terms.",
                8,
                "privacy",
            ),
            (
                "Obtain the supplier's incident report: what happened, which data, since when, "
                "measures taken.",
                24,
                "",
            ),
            ("Identify the affected customers and records through the supplier.", 24, ""),
            ("Record the supplier's measures and follow-up commitments.", 72, "legal"),
        ],
    ),
    "customer_supplied_sensitive_data": (
        "Customer-supplied sensitive data",
        "A customer sent us sensitive personal data we should not hold.",
        [
            (
                "Restrict access to what was received (ticket, attachment, mailbox) to those who need it.",
                2,
                "",
            ),
            ("Tell the customer what we received and ask how they want it handled.", 24, ""),
            ("Delete the data securely once the customer agrees, and record the deletion.", 72, ""),
        ],
    ),
    "other": (
        "Other incident",
        "Any other personal data breach.",
        [
            ("Contain the incident and record what was done.", 4, ""),
            ("Establish which personal data and which customers are involved.", 24, ""),
            ("Review the assessment once the preliminary investigation is complete.", 48, ""),
        ],
    ),
}


def seed(apps, schema_editor):
    StakeholderGroup = apps.get_model("triage", "StakeholderGroup")
    PlaybookTemplate = apps.get_model("triage", "PlaybookTemplate")
    PlaybookStep = apps.get_model("triage", "PlaybookStep")
    for name, (description, min_band, scenarios) in STAKEHOLDER_GROUPS.items():
        StakeholderGroup.objects.get_or_create(
            name=name,
            defaults={"description": description, "min_band": min_band, "scenarios": scenarios},
        )
    for scenario, (title, description, steps) in PLAYBOOKS.items():
        template, created = PlaybookTemplate.objects.get_or_create(
            scenario=scenario, defaults={"title": title, "description": description}
        )
        if not created:
            continue
        for order, (step, hours, role) in enumerate(steps, start=1):
            PlaybookStep.objects.create(
                template=template,
                order=order,
                description=step,
                due_after=timedelta(hours=hours),
                assignee_role=role,
            )


class Migration(migrations.Migration):
    dependencies = [("triage", "0002_group_permissions")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
