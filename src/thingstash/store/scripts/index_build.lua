-- Take things already stored into an index being built (one bounded batch): each entry is
-- written only if its thing still has the version that was read, so a write since (which
-- keeps the index itself, the index being declared) or a delete wins.
-- KEYS[1] = the declarations' generation
-- KEYS[2], KEYS[3] = the index's sorted set and hash (name -> member) for one folder
-- KEYS[4..] = the things' keys
-- ARGV[1] = the generation the builder's declarations are from
-- then for each thing (in KEYS order): the version read, its name, its member
-- returns how many entries were written, or STALE_INDEXES when the declarations changed (the
-- index may have been dropped)
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then
  return redis.error_reply('STALE_INDEXES declarations changed: reload them')
end
local written = 0
for k = 4, #KEYS do
  local at = 2 + 3 * (k - 4)
  local version, name, member = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  if redis.call('GETRANGE', KEYS[k], 0, 15) == version then
    local old = redis.call('HGET', KEYS[3], name)
    if old ~= member then
      if old then
        redis.call('ZREM', KEYS[2], old)
      end
      redis.call('ZADD', KEYS[2], 0, member)
      redis.call('HSET', KEYS[3], name, member)
      written = written + 1
    end
  end
end
return written
