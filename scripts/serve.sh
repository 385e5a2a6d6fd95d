#!/usr/bin/env bash
# Set everything up and serve on http://localhost:10000 with the embedded defaults:
# SQLite and generated secrets in ./data, in-process cache. The first run prints a
# development API key.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export DEBUG="${DEBUG:-true}"
.venv/bin/python manage.py migrate --noinput -v0
if [ ! -f data/dev-api-key.txt ]; then
  .venv/bin/python manage.py generate_api_key dev --rate-limit 600 | tee data/dev-api-key.txt
  echo "(kept in data/dev-api-key.txt)"
fi
export PORT="${PORT:-10000}"
echo "Serving on http://localhost:${PORT} (docs: http://localhost:${PORT}/docs)"
exec .venv/bin/gunicorn memoryproject.wsgi:application --config gunicorn.conf.py \
  --bind "0.0.0.0:${PORT}"
