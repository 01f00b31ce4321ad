-- Rank: KEYS wait, seen; ARGV now_ms, user. Returns the 1-based rank or -1; asking is a sign of life.
local rank = redis.call('ZRANK', KEYS[1], ARGV[2])
if not rank then
  return -1
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
return rank + 1
