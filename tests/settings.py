"""Settings for the test suite: the product's settings with test defaults from the environment.

Tests run against real Postgres and Redis; `make test` makes sure both are up.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatewayportal")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Tests enqueue in-process unless an end-to-end test starts a real worker.
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault(
    "FIELD_ENCRYPTION_KEYS",
    "0UW2N0yqGo0X5uSm_0ZbM3nnAV6yQ7v4J0u6cEoXh4k=,Jm3S6m9h1-3H0A9Yb8oQyJQ3b2d9wC0m0KXW7F5v3_s=",
)
os.environ.setdefault("LOG_FORMAT", "plain")
# kubesim serves plain HTTP; tests of the refusal switch it off themselves.
os.environ.setdefault("ALLOW_INSECURE_CLUSTERS", "true")

from gatewayportal.settings import *  # noqa: E402,F403
from gatewayportal.settings import DATABASES, env  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_gatewayportal")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Each test run keeps its own cache keys (rate limits, coalescing markers) in the shared Redis.
CACHES["default"]["KEY_PREFIX"] = f"test-{os.getpid()}"  # noqa: F405
