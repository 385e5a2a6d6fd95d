"""/openapi.json names things the way a generated client wants them: stable operation ids
by the rule in memoryproject/schema.py, one clean name per component, a server to call."""

import re
import subprocess
import sys

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from chat.services import EXTRACTION_SCHEMA
from memories.models import MAX_ID_CHARS, MAX_IMPORTANCE, MIN_IMPORTANCE, MemoryType

ID_RULE = re.compile(r"^(memories|chat|gdpr|service)_[a-z]+(_[a-z]+)*$")
# What drf-spectacular derives from a path and a method when no id is set.
DERIVED = re.compile(r"(^api_|_v1_|_(retrieve|destroy|partial_update)$)")
V1_OPERATION_IDS = {
    ("get", "/"): "service_status",
    ("get", "/health"): "service_health",
    ("post", "/api/v1/memory"): "memories_create",
    ("get", "/api/v1/memory"): "memories_list",
    ("get", "/api/v1/memory/{memory_id}"): "memories_get",
    ("patch", "/api/v1/memory/{memory_id}"): "memories_update",
    ("delete", "/api/v1/memory/{memory_id}"): "memories_delete",
    ("delete", "/api/v1/memory/{memory_id}/soft"): "memories_soft_delete",
    ("get", "/api/v1/memory/stats"): "memories_stats",
    ("post", "/api/v1/memory/context"): "memories_context",
    ("post", "/api/v1/memory/extract"): "memories_extract",
    ("post", "/api/v1/chat"): "chat_create",
    ("get", "/api/v1/gdpr/export"): "gdpr_export",
    ("delete", "/api/v1/gdpr/delete"): "gdpr_delete",
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield method, path, operation


def test_v1_operations_keep_their_ids(schema):
    ids = {(method, path): op["operationId"] for method, path, op in operations(schema)}
    assert {key: ids.get(key) for key in V1_OPERATION_IDS} == V1_OPERATION_IDS


def test_every_operation_id_follows_the_rule_once(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert [i for i in ids if not ID_RULE.match(i) or DERIVED.search(i)] == []


def test_component_names_have_no_doubled_suffix(schema):
    names = list(schema["components"]["schemas"])
    doubled = re.compile(r"(Request|Response)(Request|Response)$")
    assert [n for n in names if doubled.search(n) or "Serializer" in n] == []
    assert {"ChatRequest", "ContextRequest", "ExtractRequest", "MemoryRequest"} <= set(names)


def test_request_objects_refuse_unknown_properties(schema):
    components = schema["components"]["schemas"]
    for name in ("MemoryRequest", "PatchedMemoryRequest", "ChatRequest", "MessageRequest"):
        assert components[name]["additionalProperties"] is False, name
    # Free-form JSON inside a body stays free-form.
    assert components["MemoryRequest"]["properties"]["metadata"]["additionalProperties"] is True


def test_soft_delete_takes_an_optional_user_id(schema):
    parameters = schema["paths"]["/api/v1/memory/{memory_id}/soft"]["delete"]["parameters"]
    user_id = next(p for p in parameters if p["name"] == "user_id")
    assert user_id["in"] == "query"
    assert user_id.get("required", False) is False
    assert "404" in user_id["description"]


def test_servers_name_the_service_that_answered(schema):
    assert schema["servers"] == [{"url": "http://testserver", "description": "This service"}]


@pytest.mark.slow
def test_a_standard_generator_builds_an_importable_client(schema, tmp_path):
    """openapi-python-client (a pinned dev dependency), offline, from the served schema."""
    import json

    (tmp_path / "openapi.json").write_text(json.dumps(schema))
    # No post-hooks: the generated code is not ours to lint.
    (tmp_path / "config.yml").write_text("post_hooks: []\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yml",
            "--meta",
            "none",
            "--output-path",
            "memory_client",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import memory_client.api.memories.memories_create as create\n"
            "import memory_client.api.llm.chat_create as chat\n"
            "from memory_client import AuthenticatedClient\n"
            "from memory_client.models import ChatRequest, MemoryRequest, MemoryTypeEnum\n"
            "body = MemoryRequest(user_id='u1', content='likes tea', type_=MemoryTypeEnum.FACT)\n"
            "assert body.to_dict()['type'] == 'fact'\n"
            "print(create.sync_detailed.__name__, chat.sync.__name__)\n",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["sync_detailed", "sync"]


def _properties(schema):
    """(name, property schema) of every request body property and every parameter: what
    a client sends, and so what the limits apply to."""
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            yield from component.get("properties", {}).items()
    for _, _, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            yield parameter["name"], parameter["schema"]


def test_schema_bounds_are_the_contract_constants(schema):
    """The limits a generated client sees, and the extraction schema the LLM gets, are the
    ones declared next to the model: a copy that drifts fails here."""
    found = {"user_id": [], "key": [], "importance": [], "min_importance": []}
    for name, prop in _properties(schema):
        if name in ("user_id", "key"):
            found[name].append(prop.get("maxLength"))
        elif name in ("importance", "min_importance"):
            found[name].append((prop.get("minimum"), prop.get("maximum")))
    assert {name: set(values) for name, values in found.items()} == {
        "user_id": {MAX_ID_CHARS},
        "key": {MAX_ID_CHARS},
        "importance": {(MIN_IMPORTANCE, MAX_IMPORTANCE)},
        "min_importance": {(MIN_IMPORTANCE, MAX_IMPORTANCE)},
    }
    assert schema["components"]["schemas"]["MemoryTypeEnum"]["enum"] == MemoryType.values

    item = EXTRACTION_SCHEMA["properties"]["memories"]["items"]["properties"]
    assert item["type"]["enum"] == MemoryType.values
    bounds = (item["importance"]["minimum"], item["importance"]["maximum"])
    assert bounds == (MIN_IMPORTANCE, MAX_IMPORTANCE)


def test_openapi_is_valid_and_documents_every_endpoint():
    response = APIClient().get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    expected = {
        ("/", "get"),
        ("/health", "get"),
        ("/api/v1/memory", "post"),
        ("/api/v1/memory", "get"),
        ("/api/v1/memory/{memory_id}", "get"),
        ("/api/v1/memory/{memory_id}", "patch"),
        ("/api/v1/memory/{memory_id}", "delete"),
        ("/api/v1/memory/{memory_id}/soft", "delete"),
        ("/api/v1/memory/stats", "get"),
        ("/api/v1/memory/context", "post"),
        ("/api/v1/memory/extract", "post"),
        ("/api/v1/chat", "post"),
        ("/api/v1/gdpr/export", "get"),
        ("/api/v1/gdpr/delete", "delete"),
    }
    assert {(p, m) for p, ops in paths.items() for m in ops} >= expected
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    create = paths["/api/v1/memory"]["post"]
    assert {"200", "400", "401", "429", "503"} <= set(create["responses"])
    assert "X-RateLimit-Remaining" in create["responses"]["200"]["headers"]
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert paths["/health"]["get"].get("security") in (None, [], [{}])


def test_docs_page_uses_no_external_host():
    response = APIClient().get("/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    assert urls
    assert all(not re.match(r"^(https?:)?//", url) for url in urls), urls
    for url in urls:
        if url.startswith("/static/"):
            assert APIClient().get(url).status_code == 200, url
