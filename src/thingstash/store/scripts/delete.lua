-- Delete a thing if its preconditions hold; drop it (and folders left empty) from the indexes.
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- KEYS[1] = the thing's key
-- KEYS[2] = the change feed stream (absent when the caller logs the change itself)
-- KEYS[3] = the expiry schedule (absent when the caller unschedules it itself)
-- KEYS[4..n] = the folder indexes holding it, its parent first, the root last
-- ARGV[1] = If-Match: "" (no condition), "*" or ",v1,v2,"
-- ARGV[2] = the thing's path, for the feed
-- ARGV[3] = the feed's approximate maximum length
-- ARGV[4..] = the name held in each of KEYS[4..n]
-- returns {1, event id or nil} when deleted, {-1} when it did not exist (and no If-Match),
-- or {0, current version or nil} when the precondition fails
local current = redis.call('GETRANGE', KEYS[1], 0, 15)
local if_match = ARGV[1]
if if_match ~= '' then
  if current == '' or (if_match ~= '*' and not string.find(if_match, ',' .. current .. ',', 1, true)) then
    return {0, current ~= '' and current or false}
  end
end
if current == '' then
  return {-1}
end
redis.call('DEL', KEYS[1])
if KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
for i = 4, #KEYS do
  remove_name(KEYS[i], ARGV[i])
  -- a folder stays listed in its parent while anything is left in it
  if redis.call('ZCARD', KEYS[i]) > 0 then
    break
  end
end
apply_indexes()
local id = false
if KEYS[2] then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', 'delete', 'p', ARGV[2])
end
return {1, id}
