-- Record that a thing expired: drop it (and folders left empty) from the indexes and log an
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- `expire` event, exactly once however many processes heard of it (the ZREM is the guard).
-- KEYS[1] = the thing's key (checked: a thing written again since is not expired)
-- KEYS[2] = the change feed stream
-- KEYS[3] = the expiry schedule
-- KEYS[4..n] = the folder indexes holding it, its parent first, the root last
-- ARGV[1] = the thing's path, for the feed
-- ARGV[2] = the feed's approximate maximum length
-- ARGV[3..] = the name held in each of KEYS[4..n]
-- returns the event id, or nil when there was nothing to record
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
redis.call('ZREM', KEYS[3], ARGV[1])  -- nothing left for the reaper to do
apply_indexes()
if redis.call('ZREM', KEYS[4], ARGV[3]) == 0 then
  return false
end
for i = 4, #KEYS - 1 do
  -- a folder stays listed in its parent while anything is left in it
  if redis.call('ZCARD', KEYS[i]) > 0 then
    break
  end
  remove_name(KEYS[i + 1], ARGV[i])
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', 'expire', 'p', ARGV[1])
