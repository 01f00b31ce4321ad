-- Consume admission ARGV[10] of user ARGV[9]: 1 consumed, 2 used already, 0 not admitted.
local user, id = ARGV[9], ARGV[10]
if redis.call('HGET', adm, user) ~= id then
  return 0
end
local expires = redis.call('ZSCORE', proceed, user)
if expires and tonumber(expires) > now then
  redis.call('ZREM', proceed, user)
  redis.call('ZADD', spent, expires, user)
  redis.call('HINCRBY', meta, 'consumed_total', 1)
  return 1
end
local used = redis.call('ZSCORE', spent, user)
if used and tonumber(used) > now then
  return 2
end
return 0
