-- Shared by every script (prepended when the scripts are loaded).
-- KEYS: wait, proceed, seen, meta, admits, index, pre, spent, adm
-- ARGV: now_ms, queue, then the engine's default policy (batch, interval_ms, max_active (0 = none),
--       ttl_ms, idle_ms (0 = none), admit_when_idle (0|1)); a script's own arguments from ARGV[9].
local wait, proceed, seen, meta, admits, index, pre, spent, adm =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local now, queue = tonumber(ARGV[1]), ARGV[2]

-- The queue's policy: configured, else the engine's default.
local function policy()
  local f = redis.call('HMGET', meta, 'configured', 'batch', 'interval_ms', 'max_active', 'ttl_ms',
    'idle_ms', 'idle_admit')
  if f[1] == '1' then
    return tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6]), f[7] == '1'
  end
  return tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
    tonumber(ARGV[7]), ARGV[8] == '1'
end

-- Whether the queue is open, opening it if its time came: from then on the pre-queue (ordered
-- by lottery number since people joined) comes first. Decided here, inside a script, once.
local function open()
  local f = redis.call('HMGET', meta, 'opens_at', 'opened_at')
  if not f[1] or f[2] then
    return true
  end
  if now >= tonumber(f[1]) then
    redis.call('HSET', meta, 'opened_at', now)
    redis.call('HINCRBY', meta, 'version', 1)
    return true
  end
  return false
end

-- The lottery number of `user` (crate::lottery::number): 52 bits of SHA-1(seed "\n" user).
local function lottery(seed, user)
  return tonumber(string.sub(redis.sha1hex(seed .. '\n' .. user), 1, 13), 16)
end

-- Admits `user` until now + ttl; returns the admission's number.
local function grant(user, ttl)
  local id = redis.call('HINCRBY', meta, 'admitted_total', 1)
  redis.call('ZADD', proceed, now + ttl, user)
  redis.call('ZREM', spent, user)
  redis.call('HSET', adm, user, id)
  return id
end

-- Everyone in line: the pre-queue (once open) and then the arrivals after the opening.
local function waiting(is_open)
  if is_open then
    return redis.call('ZCARD', pre) + redis.call('ZCARD', wait)
  end
  return redis.call('ZCARD', wait)
end

-- Where `user` stands, as the reply of join and place:
-- {2, expires, id} admitted; {1, rank, 0} waiting; {3, opens_at, 0} in the pre-queue; nil nowhere.
local function place(user, is_open)
  local expires = redis.call('ZSCORE', proceed, user)
  if expires and tonumber(expires) > now then
    return {2, tonumber(expires), tonumber(redis.call('HGET', adm, user))}
  end
  local rank = redis.call('ZRANK', pre, user)
  if rank then
    if is_open then
      -- Put in line at the opening, heard from now: from here on idle drops apply.
      redis.call('ZADD', seen, now, user)
      return {1, rank + 1, 0}
    end
    return {3, tonumber(redis.call('HGET', meta, 'opens_at')), 0}
  end
  rank = redis.call('ZRANK', wait, user)
  if rank then
    redis.call('ZADD', seen, 'XX', now, user)
    return {1, redis.call('ZCARD', pre) + rank + 1, 0}
  end
  return nil
end
