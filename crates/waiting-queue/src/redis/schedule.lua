-- Schedule the opening at ARGV[9] (ms; empty: now), with ARGV[10] as the lottery seed unless one
-- was drawn already. Returns 1, 0 when the queue opened already at another time, 2 when people
-- are waiting in an unscheduled queue.
local at = ARGV[9]
if at == '' then
  at = tostring(now)
end
open()
local f = redis.call('HMGET', meta, 'opens_at', 'opened_at', 'seed')
if f[2] then
  if ARGV[9] == '' or f[1] == at then
    return 1
  end
  return 0
end
if not f[1] and redis.call('ZCARD', wait) > 0 then
  -- People are in line already: a pre-queue would jump them.
  return 2
end
if not f[3] then
  redis.call('HSET', meta, 'seed', ARGV[10])
end
redis.call('HSET', meta, 'opens_at', at)
redis.call('SADD', index, queue)
open()
return 1
