"""Settings for the fault tests' workers: an unacknowledged task comes back within seconds, not minutes.

Production keeps kombu's defaults with a 600 s visibility timeout (gatewayportal/settings.py); only the wait
differs, not the mechanism under test.
"""

from tests.settings import *  # noqa: F403

VISIBILITY_TIMEOUT_SECONDS = 5
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    # Look for unacknowledged messages every second instead of every 10 × 10 s.
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
