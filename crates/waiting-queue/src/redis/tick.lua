-- Tick or manual admission. ARGV[9] mode ('due' | 'seq' | 'manual'), ARGV[10] n (the tick number
-- for 'seq', the count for 'manual').
-- Returns {applied (0|1), tick, expired, dropped, waiting, {admitted...}}.
local mode, n = ARGV[9], tonumber(ARGV[10])
local is_open = open()
local batch, interval, max_active, ttl, idle = policy()
local f = redis.call('HMGET', meta, 'tick', 'last_tick', 'paused', 'sold_out', 'burst', 'configured',
  'opened_at')
local tick = tonumber(f[1] or '0')

-- The opening starts a fresh interval: the ticks before it admitted nobody.
local fresh = f[7] and f[2] and tonumber(f[2]) < tonumber(f[7])
if (mode == 'due' and f[2] and now - tonumber(f[2]) < interval and not fresh)
  or (mode == 'seq' and tick + 1 ~= n) then
  return {0, tick, 0, 0, waiting(is_open), {}}
end

-- Bounded, so one tick never blocks Redis for long; the rest go at the next tick.
local lapsed = redis.call('ZRANGEBYSCORE', proceed, '-inf', now, 'LIMIT', 0, 10000)
for _, user in ipairs(lapsed) do
  redis.call('ZREM', proceed, user)
  redis.call('HDEL', adm, user)
end
for _, user in ipairs(redis.call('ZRANGEBYSCORE', spent, '-inf', now, 'LIMIT', 0, 10000)) do
  redis.call('ZREM', spent, user)
  if not redis.call('ZSCORE', proceed, user) then
    redis.call('HDEL', adm, user)
  end
end
local dropped = 0
if mode ~= 'manual' and idle > 0 then
  local silent = redis.call('ZRANGEBYSCORE', seen, '-inf', now - idle, 'LIMIT', 0, 10000)
  for _, user in ipairs(silent) do
    redis.call('ZREM', wait, user)
    redis.call('ZREM', pre, user)
    redis.call('ZREM', seen, user)
  end
  dropped = #silent
end

local count = batch - tonumber(f[5] or '0')
if f[4] == '1' or not is_open then
  -- Sold out or not open: nobody, not even by hand.
  count = 0
elseif mode == 'manual' then
  count = n
elseif f[3] == '1' then
  count = 0
end
if max_active > 0 then
  count = math.min(count, max_active - redis.call('ZCARD', proceed))
end
local admitted = {}
if count > 0 and is_open then
  -- The pre-queue first, in lottery order; then arrivals after the opening.
  admitted = redis.call('ZRANGE', pre, 0, count - 1)
  if #admitted > 0 then
    redis.call('ZREMRANGEBYRANK', pre, 0, #admitted - 1)
  end
  if #admitted < count then
    local more = redis.call('ZRANGE', wait, 0, count - #admitted - 1)
    if #more > 0 then
      redis.call('ZREMRANGEBYRANK', wait, 0, #more - 1)
      for _, user in ipairs(more) do
        admitted[#admitted + 1] = user
      end
    end
  end
end
if #admitted > 0 then
  for _, user in ipairs(admitted) do
    grant(user, ttl)
    redis.call('ZREM', seen, user)
  end
  redis.call('LPUSH', admits, now .. ':' .. #admitted)
  redis.call('LTRIM', admits, 0, 63)
end
if #admitted > 0 or dropped > 0 then
  redis.call('HINCRBY', meta, 'version', 1)
end
if mode ~= 'manual' then
  tick = tick + 1
  redis.call('HSET', meta, 'tick', tick, 'last_tick', now, 'burst', 0, 'spent', #admitted)
end
local in_line = waiting(is_open)
if in_line == 0 and redis.call('ZCARD', pre) == 0 and redis.call('ZCARD', proceed) == 0
  and redis.call('ZCARD', spent) == 0 and f[6] ~= '1' and is_open then
  redis.call('SREM', index, queue)
end
return {1, tick, #lapsed, dropped, in_line, admitted}
