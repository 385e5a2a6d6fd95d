"""A new clone that follows only the README: `./scripts/serve.sh`, the quick start and every
operator command, as written, in a shell with no DEBUG and no virtual environment on its
PATH. The copy shares this checkout's .venv (installing again would only cost time)."""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import http
from memoryproject.tests.servers import KEY_PATTERN, ROOT, free_port, wait_until_up

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text()


def readme_commands(section: str) -> list[str]:
    """The lines of the first bash block under a `## section` heading, with continued lines
    joined."""
    body = README.split(f"\n## {section}\n", 1)[1]
    block = body.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return block.replace("\\\n", " ").splitlines()


@pytest.fixture
def clone(tmp_path):
    """A copy of the project without local state (data/, .env), on the shared .venv."""
    copy = tmp_path / "clone"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "data", ".env", "__pycache__", "*_cache", ".hypothesis"
        ),
    )
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def shell_env(**extra: str) -> dict:
    """A newcomer's shell: no DEBUG, no database or secrets, no venv on the PATH."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", **extra}


def bash(script: str, cwd, **extra: str) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=shell_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script}\n{output}"
    assert "Traceback" not in output, f"{script}\n{output}"
    return result.stdout


def json_documents(text: str) -> list:
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def test_a_new_clone_runs_every_readme_command_as_written(clone):
    port = free_port()
    log = clone.parent / "serve.log"
    serve = subprocess.Popen(
        ["./scripts/serve.sh"],
        cwd=clone,
        env=shell_env(PORT=str(port), WEB_CONCURRENCY="2"),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", timeout=120, process=serve, log=log)
        served = log.read_text()

        # The key file holds the key alone, the one that the banner showed.
        key_file = (clone / "data" / "dev-api-key.txt").read_text()
        assert re.fullmatch(r"aimsk_live_[A-Za-z0-9_-]{32,}\n", key_file), key_file
        key = key_file.strip()
        assert KEY_PATTERN.search(served).group(0) == key
        assert "API KEY GENERATED SUCCESSFULLY" in served
        assert "W040" not in served
        assert "Traceback" not in served
        assert "DEBUG=true" in (clone / ".env").read_text().splitlines()
        assert http("GET", f"http://127.0.0.1:{port}/api/v1/memory?user_id=u", key)[0] == 200

        # The quick start, but for the serve.sh line already running.
        quick_start = [line for line in readme_commands("Quick start") if "serve.sh" not in line]
        script = "\n".join(quick_start).replace("localhost:10000", f"localhost:{port}")
        stored, listed, context = json_documents(bash(script, clone))
        assert stored["content"] == "User prefers dark mode and works in fintech", stored
        assert [m["id"] for m in listed] == [stored["id"]]
        assert context["memories"][0]["id"] == stored["id"]

        # The operators' commands, placeholders filled and optional arguments left out.
        commands = readme_commands("Operators")
        activate = commands[0].split("#")[0].strip()
        assert activate == "source .venv/bin/activate"
        prose_example = "python manage.py list_api_keys dev"
        assert f"`{prose_example}`" in README
        values = {"OWNER_ID": "my_customer_001"}
        outputs = {}
        for line in [*commands[1:], prose_example]:
            command = re.sub(r"\s+#.*$", "", line)
            command = re.sub(r"\s*\[[^\]]*\]", "", command).strip()
            for placeholder, value in values.items():
                command = command.replace(placeholder, value)
            assert command.startswith("python manage.py "), command
            assert not re.search(r"\b[A-Z_]{3,}\b", command), f"unfilled: {command}"
            name = command.split()[2]
            superuser = {}
            if name == "createsuperuser":  # it prompts; the same, from the environment
                command += " --noinput"
                superuser = {
                    "DJANGO_SUPERUSER_USERNAME": "admin",
                    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
                    "DJANGO_SUPERUSER_PASSWORD": "a long development password",
                }
            outputs[command] = bash(f"{activate}\n{command}", clone, **superuser)
            if name == "generate_api_key":
                values["KEY_ID"] = re.search(r"Key ID:\s+(\S+)", outputs[command]).group(1)
        covered = {command.split()[2] for command in outputs}
        assert covered >= {
            "generate_api_key",
            "list_api_keys",
            "revoke_api_key",
            "rotate_encryption_key",
            "reindex_memories",
            "export_audit_log",
            "createsuperuser",
        }
        assert key[:17] in outputs[prose_example]
        revoked = bash(f"{activate}\npython manage.py list_api_keys my_customer_001", clone)
        assert " yes (" in revoked.splitlines()[1]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
