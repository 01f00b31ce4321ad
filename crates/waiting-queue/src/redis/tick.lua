-- Tick or manual admission.
-- KEYS wait, proceed, seen, meta, admits, index
-- ARGV now_ms, default batch, interval_ms, max_active (0 = none), ttl_ms, idle_ms (0 = none),
--      mode ('due' | 'seq' | 'manual'), n (the tick number for 'seq', the count for 'manual'), queue
-- Returns {applied (0|1), tick, expired, dropped, waiting, {admitted...}}.
local wait, proceed, seen, meta, admits = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, mode, n = tonumber(ARGV[1]), ARGV[7], tonumber(ARGV[8])

local f = redis.call('HMGET', meta, 'configured', 'batch', 'interval_ms', 'max_active', 'ttl_ms',
  'idle_ms', 'tick', 'last_tick', 'paused')
local configured = f[1] == '1'
local batch, interval, max_active, ttl, idle = tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if configured then
  batch, interval, max_active, ttl, idle = tonumber(f[2]), tonumber(f[3]), tonumber(f[4]),
    tonumber(f[5]), tonumber(f[6])
end
local tick = tonumber(f[7] or '0')

if (mode == 'due' and f[8] and now - tonumber(f[8]) < interval)
  or (mode == 'seq' and tick + 1 ~= n) then
  return {0, tick, 0, 0, redis.call('ZCARD', wait), {}}
end

local expired = redis.call('ZREMRANGEBYSCORE', proceed, '-inf', now)
local dropped = 0
if mode ~= 'manual' and idle > 0 then
  -- Bounded, so one tick never blocks Redis for long; the rest go at the next tick.
  local silent = redis.call('ZRANGEBYSCORE', seen, '-inf', now - idle, 'LIMIT', 0, 10000)
  for _, user in ipairs(silent) do
    redis.call('ZREM', wait, user)
    redis.call('ZREM', seen, user)
  end
  dropped = #silent
end

local count = batch
if mode == 'manual' then
  count = n
elseif f[9] == '1' then
  count = 0
end
if max_active > 0 then
  count = math.min(count, max_active - redis.call('ZCARD', proceed))
end
local admitted = {}
if count > 0 then
  admitted = redis.call('ZRANGE', wait, 0, count - 1)
end
if #admitted > 0 then
  redis.call('ZREMRANGEBYRANK', wait, 0, #admitted - 1)
  for _, user in ipairs(admitted) do
    redis.call('ZADD', proceed, now + ttl, user)
    redis.call('ZREM', seen, user)
  end
  redis.call('HINCRBY', meta, 'admitted_total', #admitted)
  redis.call('LPUSH', admits, now .. ':' .. #admitted)
  redis.call('LTRIM', admits, 0, 63)
end
if #admitted > 0 or dropped > 0 then
  redis.call('HINCRBY', meta, 'version', 1)
end
if mode ~= 'manual' then
  tick = tick + 1
  redis.call('HSET', meta, 'tick', tick, 'last_tick', now)
end
local waiting = redis.call('ZCARD', wait)
if waiting == 0 and redis.call('ZCARD', proceed) == 0 and not configured then
  redis.call('SREM', KEYS[6], ARGV[9])
end
return {1, tick, expired, dropped, waiting, admitted}
