-- Store a thing whole, if its preconditions hold; index it in its folders and log the change.
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- KEYS[1] = the thing's key
-- KEYS[2] = the change feed stream (absent when the caller logs the change itself)
-- KEYS[3] = the expiry schedule (absent when the caller schedules the expiry itself)
-- KEYS[4..n] = the folder indexes holding it, its parent first, the root last
-- ARGV[1] = If-Match: "" (no condition), "*" (must exist) or ",v1,v2," (current version in it)
-- ARGV[2] = If-None-Match: "" (no condition), "*" (must not exist) or ",v1,v2,"
-- ARGV[3] = payload: 16-character version then the JSON
-- ARGV[4] = lifetime in ms
-- ARGV[5] = event type for the feed ("put" or "patch")
-- ARGV[6] = the thing's path, for the feed
-- ARGV[7] = the feed's approximate maximum length
-- ARGV[8] = when its lifetime ends (unix ms): its score in the expiry schedule
-- ARGV[9..] = the name to add to each of KEYS[4..n] ("c" in "a/b/", "b/" in "a/", "a/" in "")
-- returns {1 created or 2 replaced, event id or nil}, or {0, current version or nil} when a
-- precondition fails
local current = redis.call('GETRANGE', KEYS[1], 0, 15)
local exists = current ~= ''
local if_match, if_none_match = ARGV[1], ARGV[2]
local function listed(list)
  return list == '*' or string.find(list, ',' .. current .. ',', 1, true) ~= nil
end
if if_match ~= '' and not (exists and listed(if_match)) then
  return {0, exists and current or false}
end
if if_none_match ~= '' and exists and listed(if_none_match) then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
if KEYS[3] then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[6])
end
for i = 4, #KEYS do
  -- (folders.lua: a new sub-folder joins its set.) A name already there ends it: every folder
  -- above is listed in its own parent already, as a folder leaves its parent only once empty
  -- (delete.lua, expire.lua, reap.lua, prune.lua). Rewriting a thing then costs one ZADD, not
  -- one per level.
  if add_name(KEYS[i], ARGV[i + 5]) == 0 then
    break
  end
end
apply_indexes()
local id = false
if KEYS[2] then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*',
    'e', ARGV[5], 'p', ARGV[6], 'd', ARGV[3], 't', ARGV[4])
end
return {exists and 2 or 1, id}
