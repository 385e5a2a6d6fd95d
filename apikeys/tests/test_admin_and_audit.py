import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from apikeys.models import ApiKey, AuditEvent
from apikeys.services import create_api_key, record_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    from django.test import Client

    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    browser = Client()
    browser.force_login(user)
    return browser


def test_admin_lists_keys_without_secrets_and_revokes(admin_client):
    issued = create_api_key(owner_id="cust_admin")
    page = admin_client.get("/admin/apikeys/apikey/")
    assert page.status_code == 200
    html = page.content.decode()
    assert issued.api_key.prefix in html
    assert "cust_admin" in html
    assert issued.plaintext not in html
    assert issued.api_key.key_hash not in html
    detail = admin_client.get(f"/admin/apikeys/apikey/{issued.api_key.pk}/change/").content
    assert issued.api_key.key_hash.encode() not in detail
    assert admin_client.get("/admin/apikeys/apikey/add/").status_code == 403
    response = admin_client.post(
        "/admin/apikeys/apikey/",
        {"action": "revoke", "_selected_action": [str(issued.api_key.pk)]},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    revoked = AuditEvent.objects.get(event="key_revoked", target=str(issued.api_key.pk))
    assert revoked.actor == "operator:ops"


def test_audit_log_is_read_only_in_admin_and_in_the_orm(admin_client):
    event = record_event(event="gdpr_export", owner_id="o", actor="k", target="t")
    assert admin_client.get("/admin/apikeys/auditevent/").status_code == 200
    assert (
        admin_client.get("/admin/apikeys/auditevent/?event__exact=gdpr_export").status_code == 200
    )
    assert admin_client.get("/admin/apikeys/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/apikeys/auditevent/{event.pk}/delete/").status_code == 403
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


def test_export_audit_log_filters_by_date_owner_and_event():
    old = record_event(event="key_created", owner_id="a", actor="operator", target="1")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    record_event(event="gdpr_erase", owner_id="a", actor="k", target="h", details={"counts": {}})
    record_event(event="gdpr_erase", owner_id="b", actor="k", target="h")
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d")

    out = io.StringIO()
    call_command("export_audit_log", "--since", since, "--owner", "a", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["owner_id"]) for e in lines] == [("gdpr_erase", "a")]
    assert lines[0]["details"] == {"counts": {}}

    out = io.StringIO()
    call_command("export_audit_log", "--format", "csv", "--event", "gdpr_erase", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sorted(r["owner_id"] for r in rows) == ["a", "b"]
    assert set(rows[0]) == {"id", "created_at", "event", "owner_id", "actor", "target", "details"}


@pytest.mark.parametrize(
    "args", [["--since", "yesterday"], ["--since", "2026-02-01", "--until", "2026-01-01"]]
)
def test_export_audit_log_refuses_bad_dates(args):
    with pytest.raises(CommandError):
        call_command("export_audit_log", *args, stdout=io.StringIO())
