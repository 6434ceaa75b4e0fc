"""Lua scripts of the Redis rate-limit storages (internal).

Both scripts read the clock with ``redis.call('TIME')``, so every application server
shares Redis's clock and none sends a timestamp. Calling TIME before a write needs
effects replication, the default since Redis 5 (and the only mode since Redis 7); kit-auth
requires Redis >= 5. Each script touches a single key (a ``{...}``-hash-tagged string or
hash), so it is valid in Redis Cluster, and sets a PEXPIRE so idle keys vanish.

Return value of both: the string ``"<allowed 0/1> <remaining> <reset_after> <retry_after>"``
(one bulk reply parses faster than an array), times in microseconds (GCRA) or milliseconds (sliding window). ARGV[3] (cost) 0 means peek.
"""

from __future__ import annotations

from typing import Final

__all__ = ["GCRA", "SLIDING_WINDOW"]

#: KEYS[1] = TAT key. ARGV: emission interval (us), tolerance = burst * interval (us), cost.
GCRA: Final = """
local FMT = '%d %.0f %.0f %.0f'
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if cost == 0 then
  local remaining = math.floor((now + tau - tat) / interval)
  if remaining >= 1 then return string.format(FMT, 1, remaining, tat - now, 0) end
  return string.format(FMT, 0, 0, tat - now, tat + interval - tau - now)
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tau
if allow_at > now then
  return string.format(FMT, 0, math.floor((now + tau - tat) / interval), tat - now, allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return string.format(FMT, 1, math.floor((now + tau - new_tat) / interval), new_tat - now, 0)
"""

#: KEYS[1] = hash {w = window index, c = current count, p = previous count}.
#: ARGV: period (ms), limit, cost.
SLIDING_WINDOW: Final = """
local FMT = '%d %.0f %.0f %.0f'
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now / period)
local elapsed = now - index * period
local v = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(v[1])
local current = 0
local previous = 0
if w == index then
  current = tonumber(v[2]) or 0
  previous = tonumber(v[3]) or 0
elseif w == index - 1 then
  previous = tonumber(v[2]) or 0
end
local weighted = math.floor(previous * (period - elapsed) / period) + current
local need = cost
if need == 0 then need = 1 end
if weighted + need > limit then
  local retry
  if current + need <= limit then
    local room = limit - current - need + 1
    retry = math.floor(period * (1 - room / previous)) + 1 - elapsed
    if retry < 1 then retry = 1 end
  else
    local room = limit - need + 1
    local extra = 0
    if current >= room then extra = math.floor(period * (1 - room / current)) + 1 end
    retry = period - elapsed + extra
  end
  local reset = period - elapsed
  if current > 0 then reset = reset + period end
  local remaining = limit - weighted
  if remaining < 0 then remaining = 0 end
  return string.format(FMT, 0, remaining, reset, retry)
end
if cost > 0 then
  current = current + cost
  redis.call('HSET', KEYS[1], 'w', string.format('%.0f', index), 'c', current, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], 2 * period - elapsed)
end
local reset = 0
if current > 0 then
  reset = 2 * period - elapsed
elseif previous > 0 then
  reset = period - elapsed
end
return string.format(FMT, 1, limit - weighted - cost, reset, 0)
"""
