-- Set or remove one thing's entry in one query index. On a Redis Cluster the thing lives in
-- another slot, so this follows its write, delete or expiry as a step of its own.
-- KEYS[1] = the index's sorted set
-- KEYS[2] = the index's hash (name -> member)
-- ARGV[1] = the thing's name
-- ARGV[2] = its member ('' to remove the entry)
-- ARGV[3] = when: '' always; '-' only if the name has no entry (a build: a write since wins);
--           else only while the entry is that member (a repair: a write since wins)
-- returns 1 when the entry changed, 0 when not
local old = redis.call('HGET', KEYS[2], ARGV[1])
local member, when = ARGV[2], ARGV[3]
if (when == '-' and old) or (when ~= '' and when ~= '-' and old ~= when) or old == member then
  return 0
end
if old then
  redis.call('ZREM', KEYS[1], old)
end
if member == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], 0, member)
  redis.call('HSET', KEYS[2], ARGV[1], member)
end
return 1
