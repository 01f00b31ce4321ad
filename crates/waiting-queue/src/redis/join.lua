-- Join. Returns place()'s reply with new = 1 for a new place, or {4} while sold out.
local is_open = open()
local user = ARGV[9]
local found = place(user, is_open)
if found then
  return found
end
-- A lapsed or used admission ends here: the user starts again at the back.
if redis.call('ZREM', proceed, user) + redis.call('ZREM', spent, user) > 0 then
  redis.call('HDEL', adm, user)
end
if redis.call('HGET', meta, 'sold_out') == '1' then
  return {4}
end
redis.call('SADD', index, queue)
if not is_open then
  local f = redis.call('HMGET', meta, 'seed', 'opens_at')
  redis.call('ZADD', pre, lottery(f[1], user), user)
  return {3, tonumber(f[2]), 1}
end
local batch, _, max_active, ttl, _, admit_when_idle = policy()
if admit_when_idle and waiting(true) == 0 and redis.call('HGET', meta, 'paused') ~= '1'
  and tonumber(redis.call('HGET', meta, 'spent') or '0') < batch
  and (max_active == 0 or redis.call('ZCARD', proceed) < max_active) then
  -- burst: deducted from the next tick; spent: this interval's admissions, tick included.
  redis.call('HINCRBY', meta, 'burst', 1)
  redis.call('HINCRBY', meta, 'spent', 1)
  local id = grant(user, ttl)
  redis.call('LPUSH', admits, now .. ':1')
  redis.call('LTRIM', admits, 0, 63)
  return {2, now + ttl, id}
end
-- Arrival numbers, not timestamps: ties in one millisecond (or across nodes) keep their order.
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('ZADD', wait, seq, user)
redis.call('ZADD', seen, now, user)
return {1, waiting(true), 1}
