-- Reap a batch of things whose lifetime ended, read from the expiry schedule (one Redis): for
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- each, what expire.lua does, unless the thing is not due after all. Idempotent: several
-- processes may reap the same batch at once; each entry is handled by the first, and the
-- folder index entry is the guard that makes one `expire` event, as in expire.lua.
-- KEYS[1] = the expiry schedule (a sorted set: path -> when its lifetime ends, unix ms)
-- KEYS[2] = the change feed stream
-- then, for each thing: its key, then the folder indexes holding it (parent first, root last)
-- ARGV[1] = now (unix ms): only entries due by then are handled
-- ARGV[2] = the feed's approximate maximum length
-- then, for each thing: its path, how many folder indexes hold it (d), then the d names
-- returns how many `expire` events were logged
local now = tonumber(ARGV[1])
local k, a = 3, 3
local logged = 0
while a <= #ARGV do
  local path, depth = ARGV[a], tonumber(ARGV[a + 1])
  local score = redis.call('ZSCORE', KEYS[1], path)
  -- Not due (any more): written again since it was read, or reaped by another process.
  if score and tonumber(score) <= now then
    -- PTTL on a key whose time is up deletes it (and frees its memory) there and then.
    local pttl = redis.call('PTTL', KEYS[k])
    if pttl >= 0 then
      -- Still alive by Redis's clock (a few ms apart from the writer's): due when it ends.
      redis.call('ZADD', KEYS[1], now + math.max(pttl, 1), path)
    else
      redis.call('ZREM', KEYS[1], path)
      -- -1 would be a key made persistent by hand: kept, and no longer scheduled.
      if pttl == -2 and redis.call('ZREM', KEYS[k + 1], ARGV[a + 2]) == 1 then
        for i = 1, depth - 1 do
          -- a folder stays listed in its parent while anything is left in it
          if redis.call('ZCARD', KEYS[k + i]) > 0 then
            break
          end
          remove_name(KEYS[k + i + 1], ARGV[a + 2 + i])
        end
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', 'expire', 'p', path)
        logged = logged + 1
      end
    end
  end
  k = k + 1 + depth
  a = a + 2 + depth
end
apply_indexes()
return logged
