-- Leave the line or the pre-queue. Returns 1 if the user was in either.
open()
local user = ARGV[9]
local removed = redis.call('ZREM', wait, user) + redis.call('ZREM', pre, user)
if removed > 0 then
  redis.call('ZREM', seen, user)
  redis.call('HINCRBY', meta, 'version', 1)
  return 1
end
return 0
