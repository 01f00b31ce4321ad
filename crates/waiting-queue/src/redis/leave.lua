-- Leave: KEYS wait, seen, meta; ARGV user. Returns 1 if the user was waiting.
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'version', 1)
end
return removed
