#!/usr/bin/env bash
# Set everything up and serve on http://localhost:10000 with the embedded defaults:
# SQLite and generated secrets in ./data, in-process cache. The first run writes .env
# with DEBUG=true (so that `python manage.py ...` uses the same defaults) and prints a
# development API key, which it keeps alone in data/dev-api-key.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
if [ ! -f .env ]; then
  printf '%s\n' "# Development mode (SQLite and secrets in ./data), written by scripts/serve.sh." \
    "DEBUG=true" >.env
  echo "Wrote .env with DEBUG=true: manage.py commands use the development defaults too."
fi
export DEBUG="${DEBUG:-true}"
.venv/bin/python manage.py migrate --noinput -v0
key_file="${DATA_DIR:-data}/dev-api-key.txt"
if [ ! -f "$key_file" ]; then
  banner="$(.venv/bin/python manage.py generate_api_key dev --rate-limit 600)"
  echo "$banner"
  (umask 077 && grep -o 'aimsk_live_[A-Za-z0-9_-]*' <<<"$banner" >"$key_file")
  echo "(kept in $key_file; print it again with: cat $key_file)"
fi
export PORT="${PORT:-10000}"
echo "Serving on http://localhost:${PORT} (docs: http://localhost:${PORT}/docs)"
exec .venv/bin/gunicorn memoryproject.wsgi:application --config gunicorn.conf.py \
  --bind "0.0.0.0:${PORT}"
