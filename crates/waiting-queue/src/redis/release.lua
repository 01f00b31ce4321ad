-- Release used admission ARGV[10] of user ARGV[9]: 1 if it is live again.
local user, id = ARGV[9], ARGV[10]
local used = redis.call('ZSCORE', spent, user)
if redis.call('HGET', adm, user) ~= id or not used or tonumber(used) <= now then
  return 0
end
redis.call('ZREM', spent, user)
redis.call('ZADD', proceed, used, user)
redis.call('HINCRBY', meta, 'consumed_total', -1)
return 1
