-- Delete a batch of things in one folder (one step of a recursive delete), logging a `delete`
-- event for each thing that existed; a folder the batch leaves empty leaves its parent in the
-- same step, and so on upwards (as prune.lua), so that a delete interrupted between its steps
-- (a process killed) never leaves an emptied folder listed.
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- KEYS[1] = the folder's index
-- KEYS[2] = the change feed stream
-- KEYS[3] = the expiry schedule
-- KEYS[4..m+3] = the m things' keys
-- KEYS[m+4..] = the indexes above the folder's: its parent's first, the root's last
-- ARGV[1] = the folder's path ("a/b/", "" for the top level)
-- ARGV[2] = the feed's approximate maximum length
-- ARGV[3] = m
-- ARGV[4..m+3] = the things' names in the folder, in the order of KEYS[4..m+3]
-- ARGV[m+4..] = the name of the folder (then of each folder above it) in KEYS[m+4..]
-- returns how many things were deleted
local m = tonumber(ARGV[3])
local deleted = 0
for i = 4, m + 3 do
  local name = ARGV[i]
  local path = ARGV[1] .. name
  if redis.call('DEL', KEYS[i]) == 1 then
    deleted = deleted + 1
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', 'delete', 'p', path)
  end
  redis.call('ZREM', KEYS[3], path)
  redis.call('ZREM', KEYS[1], name)
end
local below = KEYS[1]
for i = m + 4, #KEYS do
  -- a folder stays listed in its parent while anything is left in it
  if redis.call('ZCARD', below) > 0 then
    break
  end
  remove_name(KEYS[i], ARGV[i])
  below = KEYS[i]
end
apply_indexes()
return deleted
