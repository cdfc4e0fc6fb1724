-- Delete a batch of things in one folder (one step of a recursive delete), logging a `delete`
-- event for each thing that existed.
-- KEYS[1] = the folder's index
-- KEYS[2] = the change feed stream
-- KEYS[3] = the expiry schedule
-- KEYS[4..n] = the things' keys
-- ARGV[1] = the folder's path ("a/b/", "" for the top level)
-- ARGV[2] = the feed's approximate maximum length
-- ARGV[3..] = the things' names in the folder, in the order of KEYS[4..n]
-- returns how many things were deleted
local deleted = 0
for i = 4, #KEYS do
  local name = ARGV[i - 1]
  local path = ARGV[1] .. name
  if redis.call('DEL', KEYS[i]) == 1 then
    deleted = deleted + 1
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', 'delete', 'p', path)
  end
  redis.call('ZREM', KEYS[3], path)
  redis.call('ZREM', KEYS[1], name)
end
apply_indexes()
return deleted
