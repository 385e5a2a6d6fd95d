"""A configuration that cannot start says so in one line on stderr and exits non-zero, for
manage.py and for gunicorn alike: no traceback, no worker boot loop."""

import subprocess
import sys

import pytest

from conftest import service_env
from memoryproject.tests.servers import ROOT, free_port, web_command

PRODUCTION_WITHOUT_VARIABLES = {
    "DEBUG": "false",
    "DATABASE_URL": None,
    "ENCRYPTION_KEY": None,
    "SECRET_KEY": None,
    "ALLOWED_HOSTS": None,
}


def assert_one_line_error(result, *names: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: "), lines[0]
    for name in names:
        assert name in lines[0]


@pytest.mark.parametrize("command", [["check"], ["list_api_keys", "dev"], ["migrate"]])
def test_manage_py_without_required_variables_prints_one_line(tmp_path, command):
    env = service_env("unused", DATA_DIR=str(tmp_path), **PRODUCTION_WITHOUT_VARIABLES)
    result = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, "ENCRYPTION_KEY", "SECRET_KEY", "ALLOWED_HOSTS")


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"ENCRYPTION_KEY": "not-a-fernet-key"}, "ENCRYPTION_KEY"),
        ({"DATABASE_URL": "nowhere:secret-password"}, "DATABASE_URL"),
    ],
)
def test_manage_py_with_an_invalid_variable_prints_one_line(tmp_path, variables, name):
    env = service_env("unused", DATA_DIR=str(tmp_path), DATABASE_URL=None)
    env.update(variables)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, name)
    assert "secret-password" not in result.stderr


@pytest.mark.slow
def test_gunicorn_without_required_variables_prints_one_line(tmp_path):
    env = service_env("unused", DATA_DIR=str(tmp_path), **PRODUCTION_WITHOUT_VARIABLES)
    env.update(PORT=str(free_port()), WEB_CONCURRENCY="2")
    result = subprocess.run(  # noqa: S602 - the Procfile line, as a platform runs it
        web_command(),
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, "ENCRYPTION_KEY", "SECRET_KEY", "ALLOWED_HOSTS")


def run_settings(env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "ENCRYPTION_KEY": "Jq3nH0p7u0rJ8d3b4O5yS1kqJ1n9bQ2m7v8w6x5y4z0=",
    "SECRET_KEY": "x" * 60 + "production-secret-for-the-deploy-check",
    "ALLOWED_HOSTS": "memory.example.com",
}


def test_production_refuses_to_start_naming_every_missing_variable():
    result = run_settings({})
    assert result.returncode != 0
    for name in ("ALLOWED_HOSTS", "DATABASE_URL", "ENCRYPTION_KEY", "SECRET_KEY"):
        assert name in result.stderr
    assert result.stderr.count("Missing required environment variables") == 1


def test_production_refuses_wildcard_cors():
    result = run_settings({**PRODUCTION, "CORS_ORIGINS": "*"})
    assert result.returncode != 0
    assert "CORS_ORIGINS" in result.stderr


def test_production_refuses_a_malformed_encryption_key():
    result = run_settings({**PRODUCTION, "ENCRYPTION_KEY": "not-a-key"})
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr


def test_check_deploy_is_clean_in_production_settings():
    result = run_settings(
        {**PRODUCTION, "CORS_ORIGINS": " https://a.example.com , https://b.example.com "}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
