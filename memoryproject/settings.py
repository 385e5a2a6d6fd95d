"""Settings: the only module that reads the environment.

Development (DEBUG=true) runs on embedded defaults: SQLite and generated secrets in
``data/``, an in-process cache. Production refuses to start while a required variable is
missing and names all of them at once.
"""

import json
import secrets
import warnings
from pathlib import Path

import environ
from corsheaders.defaults import default_headers as default_cors_headers
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development data (SQLite file, generated secrets); DATA_DIR moves it, e.g. for tests.
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))
SERVICE_NAME = "ai-memory-service"
SERVICE_VERSION = "1.0.0"

DEBUG = env.bool("DEBUG", default=False)

missing: list[str] = []
problems: list[str] = []


def _local_secrets() -> dict[str, str]:
    """Development secrets, generated once and kept in the data folder across restarts."""
    path = DATA_DIR / "secrets.json"
    if path.is_file():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    generated = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(generated))
    return generated


def _required_secret(name: str) -> str:
    value: str = env.str(name, default="").strip()
    if value:
        return value
    if DEBUG:
        return _local_secrets()[name]
    missing.append(name)
    return ""


def _csv(name: str) -> list[str]:
    return [part.strip() for part in env.str(name, default="").split(",") if part.strip()]


SECRET_KEY = _required_secret("SECRET_KEY") or "unset"

# First key encrypts, every key decrypts (MultiFernet), so keys rotate without downtime.
ENCRYPTION_KEYS = [k.strip() for k in _required_secret("ENCRYPTION_KEY").split(",") if k.strip()]
for candidate in ENCRYPTION_KEYS:
    try:
        Fernet(candidate)
    except ValueError:
        problems.append("ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes)")
        break

ALLOWED_HOSTS = _csv("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    if DEBUG:
        ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
    else:
        missing.append("ALLOWED_HOSTS")

CORS_ALLOWED_ORIGINS = _csv("CORS_ORIGINS")
if "*" in CORS_ALLOWED_ORIGINS:
    problems.append("CORS_ORIGINS=* is refused: list the exact origins")
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Link",
    "X-Next-Cursor",
    "X-Request-ID",
    "Idempotent-Replayed",
]
# Browsers may send Idempotency-Key on cross-origin writes (the defaults, plus that one).
CORS_ALLOW_HEADERS = (*default_cors_headers, "idempotency-key")

DATABASE_URL = env.str("DATABASE_URL", default="").strip()
if DATABASE_URL:
    with warnings.catch_warnings():
        # On a URL it cannot read, django-environ warns with the parsed password in the text.
        warnings.simplefilter("ignore")
        DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    if DATABASES["default"].get("ENGINE") not in environ.Env.DB_SCHEMES.values():
        problems.append("DATABASE_URL must be a database URL: postgres://user:pass@host:5432/db")
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
elif DEBUG:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}
    }
else:
    missing.append("DATABASE_URL")
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

_db = DATABASES["default"]
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
_db["CONN_HEALTH_CHECKS"] = True
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A database that is down must turn into a quick 503, not a hung worker.
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).setdefault("timeout", 20)

# Read replicas (replicas/): the read-only endpoints read from one of them once it has
# replayed the owner's latest write; a replica lagging more than the bound, or down, is
# skipped. Unset: one database, exactly as without this feature.
REPLICA_DATABASES: list[str] = []
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=10.0)
for _number, _url in enumerate(_csv("DATABASE_REPLICA_URLS")):
    _replica = env.db_url_config(_url)
    if "postgresql" not in _replica["ENGINE"] or "postgresql" not in _db["ENGINE"]:
        problems.append("DATABASE_REPLICA_URLS needs PostgreSQL, for the primary too")
        break
    _replica.update(CONN_MAX_AGE=_db["CONN_MAX_AGE"], CONN_HEALTH_CHECKS=True)
    # A replica that does not answer is skipped: it must cost a read little time.
    _replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_number}"] = _replica
    REPLICA_DATABASES.append(f"replica_{_number}")
if REPLICA_DATABASES:
    DATABASE_ROUTERS = ["replicas.routing.ReplicaRouter"]

# DATABASE_POOLER=transaction: behind pgbouncer (or another pooler) in transaction mode,
# where consecutive transactions may run on different server connections, so nothing may
# rely on session state: no server-side cursors (Django keeps one open across
# transactions for .iterator()) and no prepared statements (memoryproject/prepared.py).
DATABASE_POOLER = env.str("DATABASE_POOLER", default="").strip().lower()
if DATABASE_POOLER not in ("", "transaction"):
    problems.append("DATABASE_POOLER must be 'transaction' or unset")
for _settings in DATABASES.values():
    if DATABASE_POOLER == "transaction":
        _settings["DISABLE_SERVER_SIDE_CURSORS"] = True
    elif _settings["ENGINE"] == "django.db.backends.postgresql" and _settings["CONN_MAX_AGE"] != 0:
        # A connection of its own, kept for many requests: the hot statements are prepared
        # once per connection (memoryproject/prepared.py). Django's cursors never prepare.
        _settings["PREPARED_STATEMENTS"] = True
        _settings.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)

if missing:
    raise ImproperlyConfigured(
        "Missing required environment variables (production mode, DEBUG is not true): "
        + ", ".join(sorted(missing))
    )
if problems:
    raise ImproperlyConfigured("; ".join(problems))

REDIS_URL = env.str("REDIS_URL", default="").strip()

API_KEY = env.str("API_KEY", default="").strip()
API_KEY_OWNER_ID = env.str("API_KEY_OWNER_ID", default="default").strip() or "default"
# A bootstrap key is a bearer secret like a generated one (aimsk_live_ + 43 random
# characters): a short or repetitive one could be guessed.
MIN_BOOTSTRAP_KEY_CHARS = 32
if API_KEY and (len(API_KEY) < MIN_BOOTSTRAP_KEY_CHARS or len(set(API_KEY)) < 16):
    raise ImproperlyConfigured(
        f"API_KEY must be at least {MIN_BOOTSTRAP_KEY_CHARS} random characters "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )
# Failed authentications per minute per client address before it is refused for a while
# (apikeys/lockout.py); 0 turns the lockout off. TRUSTED_PROXY_HOPS: how many proxies in
# front of the service append to X-Forwarded-For (0: use the socket's address).
AUTH_FAILURES_PER_MINUTE = env.int("AUTH_FAILURES_PER_MINUTE", default=300)
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)

OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="").strip()
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="").strip() or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini").strip() or "gpt-4o-mini"
OPENAI_EMBEDDING_MODEL = env.str("OPENAI_EMBEDDING_MODEL", default="").strip()
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=30.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
# The whole of one LLM call, retries and streaming included. Chat with extract makes two,
# so twice this stays inside gunicorn's 120 s timeout.
OPENAI_DEADLINE_SECONDS = env.float("OPENAI_DEADLINE_SECONDS", default=50.0)
# The whole of one embeddings call; the query embedding of a context request waits for it.
OPENAI_EMBEDDING_TIMEOUT_SECONDS = env.float("OPENAI_EMBEDDING_TIMEOUT_SECONDS", default=5.0)
# Inputs for models trained with different prefixes for queries and documents (E5:
# "query: " / "passage: "). Taken as written: a trailing space counts.
OPENAI_EMBEDDING_QUERY_PREFIX = env.str("OPENAI_EMBEDDING_QUERY_PREFIX", default="")
OPENAI_EMBEDDING_DOCUMENT_PREFIX = env.str("OPENAI_EMBEDDING_DOCUMENT_PREFIX", default="")

# Requests that wait on the LLM (chat, extract): at most this many at once per owner,
# across every process and host, and at most half a process's threads, so that short
# requests always find a free thread. gunicorn.conf.py runs WEB_THREADS per process and
# sets this setting to the count it really runs.
LLM_MAX_CONCURRENT_PER_OWNER = env.int("LLM_MAX_CONCURRENT_PER_OWNER", default=4)
WEB_THREADS = env.int("WEB_THREADS", default=8)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apikeys",
    "memories",
    "gdpr",
    "chat",
    "replicas",
]

MIDDLEWARE = [
    "memoryproject.middleware.JsonErrorGuardMiddleware",
    "memoryproject.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "memoryproject.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apikeys.middleware.RateLimitHeadersMiddleware",
    "memoryproject.middleware.JsonErrorMiddleware",
]
if REPLICA_DATABASES:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("apikeys.middleware.RateLimitHeadersMiddleware"),
        "replicas.routing.WritePositionMiddleware",
    )

ROOT_URLCONF = "memoryproject.urls"
WSGI_APPLICATION = "memoryproject.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Serve admin and Swagger UI assets straight from the app folders: no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Request bodies above this size answer 413 (the largest legal memory is far below it).
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.authentication.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["apikeys.throttling.TokenBucketThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["memoryproject.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "memoryproject.parsers.JsonOnlyNegotiation",
    # ASCII-escaped output: an error message that echoes a lone surrogate stays valid JSON.
    "UNICODE_JSON": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "memoryproject.errors.json_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Memory Service API",
    "DESCRIPTION": (
        "Multi-tenant memory for AI applications: store facts, preferences and events about "
        "your end users, then fetch the few that matter for the next LLM call. Every "
        "`/api/v1` operation needs `Authorization: Bearer <key>`."
    ),
    "VERSION": SERVICE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"MemoryTypeEnum": "memories.models.MemoryType"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "memoryproject.schema.add_rate_limit_headers",
        "memoryproject.schema.add_transport_errors",
        "memoryproject.schema.add_servers",
        "memoryproject.schema.forbid_unknown_request_fields",
    ],
}

# Production hardening (manage.py check --deploy). TLS ends at the proxy or load balancer,
# which also redirects plain HTTP; the service itself must still answer plain-HTTP health
# checks, hence no SECURE_SSL_REDIRECT.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SILENCED_SYSTEM_CHECKS = ["security.W008"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "memoryproject.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's defaults give these loggers plain-text handlers of their own (in DEBUG);
        # none here, so that every line goes through the JSON handler above.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "py.warnings": {"handlers": [], "propagate": True},
        # The request log replaces Django's own per-request lines below ERROR.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR", "propagate": True},
    },
}
