-- Configure: KEYS meta, index; ARGV queue, set (0|1), batch, interval_ms, max_active, ttl_ms, idle_ms.
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'configured', '1', 'batch', ARGV[3], 'interval_ms', ARGV[4],
    'max_active', ARGV[5], 'ttl_ms', ARGV[6], 'idle_ms', ARGV[7])
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'configured', 'batch', 'interval_ms', 'max_active', 'ttl_ms', 'idle_ms')
end
return 1
