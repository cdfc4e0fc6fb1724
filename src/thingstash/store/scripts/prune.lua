-- Drop a folder left empty from its parent's index, and so on upwards while folders are empty.
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- KEYS[1..n] = the folder's index, its parent's, ..., the root's
-- ARGV[1..n-1] = the name of the folder of KEYS[i] inside KEYS[i + 1] ("b/" in "a/")
-- returns how many levels were dropped
for i = 1, #KEYS - 1 do
  if redis.call('ZCARD', KEYS[i]) > 0 then
    return i - 1
  end
  remove_name(KEYS[i + 1], ARGV[i])
end
return #KEYS - 1
