import re
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apikeys.models import ApiKey, AuditEvent, hash_key

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_generate_prints_the_fixed_format_in_order():
    output = run(
        "generate_api_key", "cust_1", "--rate-limit", "120", "--metadata", '{"plan":"pro"}'
    )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert lines[0] == "API KEY GENERATED SUCCESSFULLY"
    key = next(line for line in lines if line.startswith("aimsk_live_"))
    assert re.fullmatch(r"aimsk_live_[A-Za-z0-9_-]{32,}", key)
    order = [lines.index(label) for label in ("Key ID:", "Owner ID:", "Rate Limit:")]
    assert lines.index(key) < order[0] < order[1] < order[2]
    key_id = lines[order[0] + 1]
    assert lines[order[1] + 1] == "cust_1"
    assert lines[order[2] + 1] == "120 requests/minute"
    stored = ApiKey.objects.get(pk=uuid.UUID(key_id))
    assert stored.key_hash == hash_key(key)
    assert stored.metadata == {"plan": "pro"}
    assert AuditEvent.objects.filter(event="key_created", target=key_id).exists()


def test_default_rate_limit_is_60():
    assert "60 requests/minute" in run("generate_api_key", "cust_2")


def test_plaintext_key_is_stored_nowhere():
    output = run("generate_api_key", "cust_3")
    key = re.search(r"aimsk_live_\S+", output).group(0)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                assert key not in repr(row), table
                assert key[11:] not in repr(row), table


@pytest.mark.parametrize(
    "args",
    [
        ["generate_api_key", ""],
        ["generate_api_key", "   "],
        ["generate_api_key", "x" * 256],
        ["generate_api_key", "c", "--rate-limit", "0"],
        ["generate_api_key", "c", "--rate-limit", "-5"],
        ["generate_api_key", "c", "--metadata", "{not json"],
        ["generate_api_key", "c", "--metadata", "[1, 2]"],
    ],
)
def test_generate_refuses_bad_arguments_and_writes_nothing(args):
    with pytest.raises(CommandError):
        call_command(*args, stdout=StringIO())
    assert ApiKey.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_list_shows_prefix_and_never_the_key_or_hash():
    output = run("generate_api_key", "cust_4")
    key = re.search(r"aimsk_live_\S+", output).group(0)
    listing = run("list_api_keys", "cust_4")
    stored = ApiKey.objects.get(owner_id="cust_4")
    assert str(stored.id) in listing
    assert stored.prefix in listing
    assert key not in listing
    assert stored.key_hash not in listing
    assert "60/min" in listing
    assert "no" in listing.splitlines()[1]


def test_list_for_unknown_owner_says_so():
    assert "No API keys" in run("list_api_keys", "nobody")


def test_revoke_marks_revoked_keeps_row_and_audits():
    output = run("generate_api_key", "cust_5")
    key_id = re.search(r"Key ID:\s+(\S+)", output).group(1)
    run("revoke_api_key", key_id)
    stored = ApiKey.objects.get(pk=key_id)
    assert stored.revoked_at is not None
    assert AuditEvent.objects.filter(event="key_revoked", target=key_id).count() == 1
    assert "yes" in run("list_api_keys", "cust_5")


@pytest.mark.parametrize("key_id", ["not-a-uuid", str(uuid.uuid4())])
def test_revoke_unknown_key_fails_cleanly(key_id):
    with pytest.raises(CommandError):
        call_command("revoke_api_key", key_id, stdout=StringIO())
    assert AuditEvent.objects.count() == 0


def test_commands_exit_non_zero_from_the_shell():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "generate_api_key", "c", "--rate-limit", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "rate-limit" in result.stderr
