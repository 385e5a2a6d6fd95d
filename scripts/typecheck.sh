#!/usr/bin/env bash
# The type checks that CI runs (from scripts/test.sh) and the pre-commit hook runs: the
# service apps with the Django and DRF plugins (configured in pyproject.toml), then the
# Python client and its examples under the client's own strict configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Django plugin imports the settings: give them development values that neither
# write a data folder nor point at any real database.
DEBUG=true SECRET_KEY=typecheck DATABASE_URL=postgres://127.0.0.1/typecheck \
  ENCRYPTION_KEY="$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
  .venv/bin/mypy memoryproject apikeys memories gdpr chat replicas
.venv/bin/mypy --config-file sdk/python/pyproject.toml sdk/python/src
.venv/bin/mypy --config-file sdk/python/pyproject.toml sdk/python/examples
