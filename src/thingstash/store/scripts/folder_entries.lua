-- Add or remove names in one folder index, its sub-folder set following (folders.lua), in one
-- step: on a Redis Cluster, where a folder's entries are steps of their own beside the thing.
-- KEYS[1] = the folder index
-- KEYS[2] = its sub-folder set
-- ARGV[1] = "add" or "remove"
-- ARGV[2..] = the names
-- returns how many names were added or removed (as ZADD and ZREM count them)
local change = ARGV[1] == 'add' and add_name or remove_name
local changed = 0
for i = 2, #ARGV do
  changed = changed + change(KEYS[1], ARGV[i], KEYS[2])
end
return changed
