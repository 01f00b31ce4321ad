-- Sold out (ARGV[9] = 1) or not (0); watchers are told by the version.
local was = redis.call('HGET', meta, 'sold_out') == '1'
local is = ARGV[9] == '1'
if was ~= is then
  if is then
    redis.call('HSET', meta, 'sold_out', '1')
  else
    redis.call('HDEL', meta, 'sold_out')
  end
  redis.call('HINCRBY', meta, 'version', 1)
  redis.call('SADD', index, queue)
end
return 1
