-- Finish: KEYS proceed; ARGV now_ms, user. Returns 1 if a live admission ended.
local expires = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
if expires and tonumber(expires) > tonumber(ARGV[1]) then
  return 1
end
return 0
