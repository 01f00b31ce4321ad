-- Finish: ends the user's admission, live or used. Returns 1 if it had not lapsed.
local user = ARGV[9]
local expires = redis.call('ZSCORE', proceed, user) or redis.call('ZSCORE', spent, user)
redis.call('ZREM', proceed, user)
redis.call('ZREM', spent, user)
redis.call('HDEL', adm, user)
if expires and tonumber(expires) > now then
  return 1
end
return 0
