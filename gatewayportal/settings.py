"""Settings, all read from the environment (and an optional `.env` file) in one place."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-only-secret-key" if DEBUG else None)
if not SECRET_KEY:
    raise environ.ImproperlyConfigured(
        "SECRET_KEY is not set. Set it in the environment (or DEBUG=true for a local run)."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "axes",
    "gatewayportal",
    "audit",
    "clusters",
    "services",
    "ticketing",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "gatewayportal.middleware.RequestIDMiddleware",
    "gatewayportal.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "gatewayportal.middleware.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "gatewayportal.middleware.APIErrorMiddleware",
    # Last, as django-axes asks: answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gatewayportal.urls"
WSGI_APPLICATION = "gatewayportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "gatewayportal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gatewayportal.context_processors.sign_in",
            ],
        },
    },
]

# SQLite file by default (the embedded demo); Postgres with DATABASE_URL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
# Persistent connections: opening one per request cost more than an API list's queries. Checked before reuse.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login lockout (django-axes): after AXES_FAILURE_LIMIT failed admin logins for one username from one address,
# that pair is refused for AXES_COOLOFF_MINUTES. API tokens do not go through the login form and are unaffected.
# Axes first: it refuses a locked-out login before any backend checks the password. The password backend
# (LocalLoginBackend, which honours LOCAL_LOGIN) and the OIDC backend are added with the identity settings below.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# Production hardening, all off by default: with DEBUG=false and nothing set, the portal serves plain HTTP
# behind a TLS-terminating proxy. docs/operations.md lists the values for production.
# e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (the header the proxy sets, and its HTTPS value).
SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER", default=[])) or None
if SECURE_PROXY_SSL_HEADER is not None and len(SECURE_PROXY_SSL_HEADER) != 2:
    raise environ.ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be '<header>,<value>', e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes and scrapes reach pods over plain HTTP from inside the cluster: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# WhiteNoise also serves the apps' static files without `collectstatic` (the `make run` demo runs with DEBUG=false).
WHITENOISE_USE_FINDERS = True

# Request bodies: the API refuses anything larger with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=1024 * 1024)
# Ticketing webhook deliveries accepted per source (DRF rate: "<count>/<second|minute|hour|day>").
TICKETING_RATE_LIMIT = env("TICKETING_RATE_LIMIT", default="60/min")
# Refused (unauthenticated) webhook requests accepted per client address before they answer 429.
TICKETING_UNAUTHENTICATED_RATE_LIMIT = env("TICKETING_UNAUTHENTICATED_RATE_LIMIT", default="30/min")

# Encryption at rest for private keys, cluster credentials and webhook secrets.
# A comma-separated list of Fernet keys; the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    raise environ.ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set. Generate one with "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
        "(`make run` writes a random development key into .env)."
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gatewayportal.authentication.TokenAuthentication",
        "services.identity.authentication.JWTAuthentication",
        "gatewayportal.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "gatewayportal.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "gatewayportal.exception_handler.exception_handler",
    # DRF's JSON parser through the bounded loader: deep nesting, NUL and lone surrogates are 400s, not 500s.
    "DEFAULT_PARSER_CLASSES": ["gatewayportal.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "URL_FORMAT_OVERRIDE": None,
    # Client addresses for per-client limits: X-Forwarded-For is trusted only through NUM_PROXIES proxies of
    # our own (0: the connection's address, which no request header can forge).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Gateway Portal API",
    "DESCRIPTION": "Register gateway services on the shared Istio gateways of many clusters.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets come from the pinned drf-spectacular-sidecar package, served as static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gatewayportal.openapi.add_error_responses",
    ],
}

# Celery: Redis when a broker is configured, in-process (eager) otherwise.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=env("REDIS_URL", default=""))
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"  # nothing leaves the process when tasks run eagerly
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="gatewayportal")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
CELERY_TIMEZONE = "UTC"
# Lock backend for per-gateway serialization: Redis when available, the database otherwise.
REDIS_URL = env("REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")

# Shared cache (webhook rate limits, reconcile coalescing) in Redis when there is one.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env("CACHE_URL", default=REDIS_URL)}
        if env("CACHE_URL", default=REDIS_URL)
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Rendered service list pages (services.api.listcache), keyed on versions of the data the database keeps: an entry
# is never stale, so each process may keep its own (the default, LIST_CACHE_ENTRIES pages at most); LIST_CACHE_URL
# (a Redis URL) shares them instead. LIST_CACHE_SECONDS=0 turns the cache off.
LIST_CACHE_SECONDS = env.int("LIST_CACHE_SECONDS", default=300)
CACHES["service_lists"] = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env("LIST_CACHE_URL")}
    if env("LIST_CACHE_URL", default="")
    else {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "service-lists",
        "OPTIONS": {"MAX_ENTRIES": env.int("LIST_CACHE_ENTRIES", default=200)},
    }
)

# Default lifetime of the API tokens `create_api_token` issues (0: never expire).
API_TOKEN_EXPIRY_DAYS = env.int("API_TOKEN_EXPIRY_DAYS", default=90)
# When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env("METRICS_TOKEN", default="")

SWEEP_INTERVAL_SECONDS = env.int("SWEEP_INTERVAL_SECONDS", default=300)
HEALTH_CHECK_INTERVAL_SECONDS = env.int("HEALTH_CHECK_INTERVAL_SECONDS", default=300)
# Coalescing of reconciles per gateway (clusters.coalescer, istiod's debounce): a run starts once changes have been
# quiet this long, no later than the max delay after the first change it serves, and at least the minimum interval
# after the gateway's previous run started. The minimum interval bounds Gateway writes during a burst (at most one
# per interval, whatever the load) and is what a second change soon after a run may wait; the coalescer's docstring
# and docs/benchmarks.md (Method) give the measurements behind these defaults.
RECONCILE_QUIET_SECONDS = env.float("RECONCILE_QUIET_SECONDS", default=0.1)
RECONCILE_MAX_DELAY_SECONDS = env.float("RECONCILE_MAX_DELAY_SECONDS", default=10.0)
RECONCILE_MIN_INTERVAL_SECONDS = env.float("RECONCILE_MIN_INTERVAL_SECONDS", default=10.0)
# Cluster credentials over plain http://, with insecure-skip-tls-verify or a proxy-url are refused unless this is
# set (test clusters only: the demo and the tests talk to kubesim over HTTP).
ALLOW_INSECURE_CLUSTERS = env.bool("ALLOW_INSECURE_CLUSTERS", default=False)
KUBE_REQUEST_TIMEOUT_SECONDS = env.float("KUBE_REQUEST_TIMEOUT_SECONDS", default=10.0)
CERT_EXPIRY_WARNING_DAYS = env.int("CERT_EXPIRY_WARNING_DAYS", default=30)
# The bytes of server blocks the portal lets into one Gateway, checked at request time (teams get a share of it).
# Below the 1 MiB Kubernetes object limit the planner enforces, to leave room for the platform's own servers.
GATEWAY_BYTE_BUDGET = env.int("GATEWAY_BYTE_BUDGET", default=960 * 1024)

# Every tls_secret_path file (cert, key, CA) must sit under this directory of the gateway pod.
TLS_SECRET_PATH_PREFIX = env("TLS_SECRET_PATH_PREFIX", default="/etc/istio/")
# Audit retention: unset keeps every event forever; dropped events are archived here first.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=None)
AUDIT_ARCHIVE_DIR = Path(env("AUDIT_ARCHIVE_DIR", default=str(BASE_DIR / "var" / "audit-archive")))
# Events are sealed into the hash chain after each commit; beat seals whatever is left this often.
AUDIT_SEAL_INTERVAL_SECONDS = env.int("AUDIT_SEAL_INTERVAL_SECONDS", default=10)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "gatewayportal.logging.RequestIDFilter"},
        "redact": {"()": "gatewayportal.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        },
        # SIEM hand-off: audit events are always one JSON object per line, whatever LOG_FORMAT says.
        "audit": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "gatewayportal.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
    },
}

LOGIN_URL = "/admin/login/"

# --- Identity (docs/identity.md) ------------------------------------------------------------------------------------
# With OIDC_ISSUER unset the portal signs people in with local accounts and API tokens only. Teams' trusted
# identities (pipelines) work either way.
OIDC_ISSUER = env("OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", default="")
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", default="groups")
OIDC_PLATFORM_GROUPS = env.list("OIDC_PLATFORM_GROUPS", default=[])
OIDC_API_AUDIENCE = env("OIDC_API_AUDIENCE", default="")
OIDC_SCOPES = env("OIDC_SCOPES", default="openid email profile")
# Password login: false refuses it for everyone but superusers (break-glass). API tokens keep working.
LOCAL_LOGIN = env.bool("LOCAL_LOGIN", default=True)
OIDC_HTTP_TIMEOUT_SECONDS = env.float("OIDC_HTTP_TIMEOUT_SECONDS", default=5.0)
OIDC_DISCOVERY_CACHE_SECONDS = 3600
OIDC_JWKS_REFRESH_SECONDS = 60  # an unknown key id refetches an issuer's keys at most this often

AUTHENTICATION_BACKENDS += [
    "services.identity.backends.LocalLoginBackend",
    "services.identity.backends.OIDCBackend",  # answers only on the OIDC callback, and only with OIDC_ISSUER set
]
# mozilla-django-oidc: endpoints come from the issuer's discovery document (services.identity.discovery).
OIDC_AUTHENTICATE_CLASS = "services.identity.views.AuthenticationRequestView"
OIDC_CALLBACK_CLASS = "services.identity.views.CallbackView"
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_RP_SIGN_ALGO = "RS256"
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=failed"
LOGOUT_REDIRECT_URL = "/admin/login/"
