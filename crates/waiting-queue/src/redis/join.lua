-- Join: KEYS wait, proceed, seen, meta, index; ARGV now_ms, user, queue.
-- Returns {2, expires_ms} if admitted, else {1, rank, new (0|1)}.
local now, user = tonumber(ARGV[1]), ARGV[2]
local expires = redis.call('ZSCORE', KEYS[2], user)
if expires then
  if tonumber(expires) > now then
    return {2, tonumber(expires)}
  end
  -- A lapsed admission ends here: the user starts again at the back.
  redis.call('ZREM', KEYS[2], user)
end
local rank = redis.call('ZRANK', KEYS[1], user)
if rank then
  redis.call('ZADD', KEYS[3], 'XX', now, user)
  return {1, rank + 1, 0}
end
-- Arrival numbers, not timestamps: ties in one millisecond (or across nodes) keep their order.
local seq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
redis.call('ZADD', KEYS[1], seq, user)
redis.call('ZADD', KEYS[3], now, user)
redis.call('SADD', KEYS[5], ARGV[3])
return {1, redis.call('ZCARD', KEYS[1]), 1}
