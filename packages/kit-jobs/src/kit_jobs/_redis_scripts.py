"""Lua scripts kit-jobs runs in Redis, each one atomic.

They write RQ's own data model (``rq:job:<id>`` hashes, ``rq:queue:<name>`` lists,
``rq:wip:<name>`` started registries with ``<job_id>:<execution_id>`` entries,
``rq:execution:*`` hashes) so ``rq info``, RQ's registries and RQ's abandoned-job
cleanup see kit-jobs' work exactly as their own. Keys of kit-jobs' own live under
``kit:jobs:``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CLAIM",
    "CLAIM_UNIQUE",
    "RELEASE_UNIQUE",
    "SEM_ACQUIRE_OR_PARK",
    "SEM_PUMP",
    "SEM_RELEASE",
]

#: Pop the first job id of the first non-empty queue and start an execution of it, in
#: one step: a worker dying right after still leaves the job in the started registry,
#: where the abandoned-job sweep finds it. Missing job hashes (deleted jobs) are skipped.
#: KEYS: queue keys..., then the matching wip keys...
#: ARGV: now (epoch s), heartbeat ttl (s), worker name, execution id, now as RQ text.
#: Returns {queue index, job id, HGETALL of the job} or nil.
CLAIM: Final = """
local n = #KEYS / 2
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
for i = 1, n do
  while true do
    local id = redis.call('LPOP', KEYS[i])
    if not id then break end
    local jkey = 'rq:job:' .. id
    if redis.call('EXISTS', jkey) == 1 then
      local eid = ARGV[4]
      local ekey = 'rq:execution:' .. id .. ':' .. eid
      redis.call('HSET', ekey, 'id', eid, 'created_at', ARGV[1], 'last_heartbeat', ARGV[1],
                 'worker_name', ARGV[3])
      redis.call('EXPIRE', ekey, math.ceil(ttl))
      redis.call('ZADD', 'rq:executions:' .. id, now + ttl + 60, eid)
      redis.call('EXPIRE', 'rq:executions:' .. id, math.ceil(ttl) + 60)
      redis.call('ZADD', KEYS[n + i], now + ttl, id .. ':' .. eid)
      redis.call('HSET', jkey, 'status', 'started', 'started_at', ARGV[5],
                 'last_heartbeat', ARGV[5], 'worker_name', ARGV[3])
      return {i - 1, id, redis.call('HGETALL', jkey)}
    end
  end
end
return nil
"""

#: Take a concurrency slot (a lease: a member of a sorted set scored by its expiry), or
#: give the execution back and park the job on the task's waiting list.
#: KEYS: semaphore zset, waiting list, wip key, execution key, executions zset, job hash
#: ARGV: limit, token, now, lease expiry, job id, execution id, key ttl
SEM_ACQUIRE_OR_PARK: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  return 1
end
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[5] .. ':' .. ARGV[6])
redis.call('HSET', KEYS[6], 'status', 'deferred')
redis.call('RPUSH', KEYS[2], ARGV[5])
return 0
"""

_PUMP_BODY: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local moved = 0
while free > 0 do
  local id = redis.call('LPOP', KEYS[2])
  if not id then break end
  local jkey = 'rq:job:' .. id
  local origin = redis.call('HGET', jkey, 'origin')
  if origin and redis.call('HGET', jkey, 'status') == 'deferred' then
    redis.call('HSET', jkey, 'status', 'queued')
    redis.call('LPUSH', 'rq:queue:' .. origin, id)
    free = free - 1
    moved = moved + 1
  end
end
return moved
"""

#: Move waiting jobs back to the front of their queue while slots are free.
#: KEYS: semaphore zset, waiting list. ARGV: limit, now.
SEM_PUMP: Final = _PUMP_BODY

#: Give a slot back, then let waiting jobs in. KEYS as SEM_PUMP; ARGV: limit, now, token.
SEM_RELEASE: Final = "redis.call('ZREM', KEYS[1], ARGV[3])\n" + _PUMP_BODY

#: Reserve a unique key for a job, or return the job that holds it.
#: KEYS: unique key. ARGV: job id, window in ms.
CLAIM_UNIQUE: Final = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

#: Free a unique key if this job holds it. KEYS: unique key. ARGV: job id.
RELEASE_UNIQUE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
