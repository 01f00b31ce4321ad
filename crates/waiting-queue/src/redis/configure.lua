-- Configure: ARGV[9] set (0|1), then batch, interval_ms, max_active, ttl_ms, idle_ms, admit_when_idle.
if ARGV[9] == '1' then
  redis.call('HSET', meta, 'configured', '1', 'batch', ARGV[10], 'interval_ms', ARGV[11],
    'max_active', ARGV[12], 'ttl_ms', ARGV[13], 'idle_ms', ARGV[14], 'idle_admit', ARGV[15])
  redis.call('SADD', index, queue)
else
  redis.call('HDEL', meta, 'configured', 'batch', 'interval_ms', 'max_active', 'ttl_ms', 'idle_ms',
    'idle_admit')
end
return 1
