#!/usr/bin/env bash
# Set everything up and run the whole test suite (lint, format check, pytest) against
# PostgreSQL and Redis. TEST_DATABASE_URL / TEST_REDIS_URL override the local defaults.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
scripts/install-test-servers.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The Python client, built and installed as a user installs it (not editable), so the suite
# tests the package as shipped; then the type checks: the apps, and the client strictly.
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps "./sdk/python[mcp]"
.venv/bin/python -m pip check
scripts/typecheck.sh
export DEBUG=true
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/memory}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
unset REDIS_URL OPENAI_API_KEY OPENAI_BASE_URL OPENAI_EMBEDDING_MODEL API_KEY \
  DATABASE_REPLICA_URLS DATABASE_POOLER
export ENCRYPTION_KEY="${TEST_ENCRYPTION_KEY:-$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}"
export SECRET_KEY="test-secret-key-not-for-production"
exec .venv/bin/python -m pytest "$@"
