"""Per-gateway coalescing of reconciles: single flight, a dirty flag, a quiet period and a minimum interval.

The state lives in Redis, one small set of keys per (cluster, traffic type), each with a TTL so that a worker
that dies mid-run holds nothing for long. Every step is one Lua script, so concurrent API processes and
workers see a consistent state. The rules, in istiod's debounce terms:

- A change (`note_change`) while no run is queued queues one. While one is queued and has not started, the
  change simply joins it. While a run is in progress the gateway is marked dirty instead: exactly one more run
  follows when the current one finishes (`finish`), however many changes arrived meanwhile.
- A queued run starts (`begin`) once no change has arrived for `quiet` seconds (PILOT_DEBOUNCE_AFTER), but no
  later than `max_delay` after the first change it serves (PILOT_DEBOUNCE_MAX), and never sooner than
  `min_interval` after the previous run on that gateway started: at most one Gateway write per `min_interval`,
  however fast changes arrive. Until then `begin` answers how long to wait and the task waits.
- Only one run per gateway at a time: a run that finds another in progress (e.g. the sweep's) marks the
  gateway dirty and leaves it to that one.

No rate threshold, no burst mode: nothing here guesses from how fast changes come.

What the defaults (settings RECONCILE_QUIET_SECONDS = 0.1, RECONCILE_MAX_DELAY_SECONDS = 10,
RECONCILE_MIN_INTERVAL_SECONDS = 10) promise, whatever the machine's load:

- A change on its own (its gateway's previous run started at least `min_interval` ago) runs `quiet` after it
  commits: applied within a second on a responsive cluster.
- A burst lasting T seconds makes at most 1 + T / `min_interval` Gateway writes, plus the one that applies its
  last change. The quiet period alone cannot bound it: changes arriving one by one through the API are more
  than 0.1 s apart as soon as the machine is loaded (a 500-change burst on a loaded 2-core machine had 195 such
  gaps), and each gap would let a run start. So the minimum interval is the bound, and its length is the price:
  a second change within `min_interval` of a run waits for the rest of that interval. Ten seconds (istiod's
  PILOT_DEBOUNCE_MAX) keeps a 500-change burst at 10 writes or fewer down to about 6 changes a second; at
  5 seconds a loaded run wrote 15 times (docs/benchmarks.md, Method).

Without Redis (the embedded demo on SQLite) or with eager tasks, there is nothing to coalesce: every request
runs at once, in process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from gatewayportal.redis import key_prefix, redis_client

# How long a queued marker or change time outlives the last touch (a queued task lost with the broker frees the
# gateway after this) and how long a run is presumed alive (a worker killed mid-run frees it after this; the
# periodic sweep covers the changes it had marked dirty).
STATE_TTL_SECONDS = 60
RUNNING_TTL_SECONDS = 120
# A queued run that has not started this long after the change that queued it is presumed lost (a purged queue,
# a broker restart): the next change queues another. A duplicate is harmless: runs are single-flight.
STALE_QUEUED_SECONDS = 30

QUEUE, JOINED, DIRTY = "queue", "joined", "dirty"
RUN, WAIT, DEFER = "run", "wait", "defer"


@dataclass(frozen=True)
class Timing:
    quiet: float
    max_delay: float
    min_interval: float


def timing() -> Timing:
    return Timing(
        quiet=settings.RECONCILE_QUIET_SECONDS,
        max_delay=settings.RECONCILE_MAX_DELAY_SECONDS,
        min_interval=settings.RECONCILE_MIN_INTERVAL_SECONDS,
    )


def enabled() -> bool:
    return bool(settings.REDIS_URL) and not settings.CELERY_TASK_ALWAYS_EAGER


def keys(cluster_id: int, traffic_type: str) -> list[str]:
    """queued (first change's time), last (latest change's time), running (token), dirty ("1"/"verify"), started."""
    base = f"{key_prefix()}:gw:{cluster_id}:{traffic_type}"
    return [f"{base}:{kind}" for kind in ("queued", "last", "running", "dirty", "started")]


# KEYS: queued last running dirty started. ARGV: now, ttl, quiet, min_interval, stale.
# Returns {"queue", countdown} | {"joined"} | {"dirty"}.
_NOTE_CHANGE = """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2])
  return {'dirty'}
end
local queued = redis.call('GET', KEYS[1])
if queued and tonumber(ARGV[1]) - tonumber(queued) > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local wait = tonumber(ARGV[3])
  local started = redis.call('GET', KEYS[5])
  if started then
    wait = math.max(wait, tonumber(started) + tonumber(ARGV[4]) - tonumber(ARGV[1]))
  end
  return {'queue', tostring(wait)}
end
return {'joined'}
"""

# KEYS: queued last running dirty started. ARGV: now, ttl, running_ttl, token, quiet, max_delay, min_interval,
# force ("1": run now unless another run is in progress), verify ("1": the run verifies every secret).
# Returns {"run"} | {"wait", seconds} | {"defer"}.
_BEGIN = """
local now = tonumber(ARGV[1])
local running = redis.call('GET', KEYS[3])
if running and running ~= ARGV[4] then
  if ARGV[9] == '1' then
    redis.call('SET', KEYS[4], 'verify', 'EX', ARGV[2])
  else
    redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2])
  end
  if ARGV[8] ~= '1' then redis.call('DEL', KEYS[1]) end
  return {'defer'}
end
if ARGV[8] ~= '1' then
  local first = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
  local last = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
  local due = math.min(last + tonumber(ARGV[5]), first + tonumber(ARGV[6]))
  local started = redis.call('GET', KEYS[5])
  if started then due = math.max(due, tonumber(started) + tonumber(ARGV[7])) end
  if due > now + 0.005 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return {'wait', tostring(due - now)}
  end
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3])
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[2])
return {'run'}
"""

# KEYS: queued last running dirty started. ARGV: now, ttl, token, min_interval.
# Returns {"idle"} | {"queue", countdown, dirty value}.
_FINISH = """
if redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
local dirty = redis.call('GET', KEYS[4])
if not dirty then return {'idle'} end
redis.call('DEL', KEYS[4])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local wait = 0
  local started = redis.call('GET', KEYS[5])
  if started then wait = math.max(0, tonumber(started) + tonumber(ARGV[4]) - tonumber(ARGV[1])) end
  return {'queue', tostring(wait), dirty}
end
return {'idle'}
"""


def _run(script: str, cluster_id: int, traffic_type: str, now: float | None, *args: Any) -> list[str]:
    """One of the scripts above on the gateway's keys: ARGV[1] is the time, ARGV[2] the state's TTL, then `args`."""
    reply = redis_client().eval(
        script, 5, *keys(cluster_id, traffic_type), repr(time.time() if now is None else now), STATE_TTL_SECONDS, *args
    )
    return [part.decode() if isinstance(part, bytes) else str(part) for part in reply]


def note_change(cluster_id: int, traffic_type: str, *, now: float | None = None) -> float | None:
    """A change was committed: the countdown for a run to queue now, or None when a queued or running run covers it."""
    t = timing()
    reply = _run(_NOTE_CHANGE, cluster_id, traffic_type, now, t.quiet, t.min_interval, STALE_QUEUED_SECONDS)
    return max(0.0, float(reply[1])) if reply[0] == QUEUE else None


def begin(
    cluster_id: int,
    traffic_type: str,
    *,
    token: str,
    force: bool = False,
    verify: bool = False,
    now: float | None = None,
) -> tuple[str, float]:
    """May this run start? (RUN, 0), (WAIT, seconds to wait first) or (DEFER, 0) to the run in progress."""
    t = timing()
    reply = _run(
        _BEGIN,
        cluster_id,
        traffic_type,
        now,
        RUNNING_TTL_SECONDS,
        token,
        t.quiet,
        t.max_delay,
        t.min_interval,
        "1" if force else "0",
        "1" if verify else "0",
    )
    return reply[0], float(reply[1]) if len(reply) > 1 else 0.0


def finish(cluster_id: int, traffic_type: str, *, token: str, now: float | None = None) -> tuple[float, bool] | None:
    """The run is over. (countdown, verify) for the one follow-up run to queue if changes arrived meanwhile."""
    t = timing()
    reply = _run(_FINISH, cluster_id, traffic_type, now, token, t.min_interval)
    if reply[0] != QUEUE:
        return None
    return float(reply[1]), reply[2] == "verify"


def unqueue(cluster_id: int, traffic_type: str) -> None:
    """The queued run could not be published after all: the marker must not hold back the next change."""
    redis_client().delete(keys(cluster_id, traffic_type)[0])


def queued_key(cluster_id: int, traffic_type: str) -> str:
    return keys(cluster_id, traffic_type)[0]
