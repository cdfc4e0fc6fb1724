-- Folder indexes and their sub-folder sets: prepended to every script that adds or removes a
-- name in a folder's index (store/indexes.py's write_script, store/base.py, store/cluster_base.py).
-- Beside each folder's index (`ns:f:{folder}`: things and sub-folders, by name) a sorted set
-- holds its sub-folders' names only (`ns:f:{folder}:sub`, the same hash slot), so that the
-- things alone can be counted and ranked by name in O(log n): ZCARD(index) - ZCARD(sub-folders),
-- ZRANK in the index less the sub-folders before. It changes only when a sub-folder's entry is
-- really added to or removed from the index (ZADD's and ZREM's replies say so): a write to a
-- thing in a folder that already exists costs nothing more.
local SUBFOLDERS = ':sub'  -- the set's key is the index's key and this (store/layout.py)

local function is_folder_name(name)
  return string.byte(name, -1) == 47  -- "b/": a sub-folder (a thing's name never ends with /)
end

-- ZADD `name` to the folder index `index` (its sub-folder set `subs`, by default the one
-- named after it); 1 when it was new.
local function add_name(index, name, subs)
  local added = redis.call('ZADD', index, 0, name)
  if added == 1 and is_folder_name(name) then
    redis.call('ZADD', subs or (index .. SUBFOLDERS), 0, name)
  end
  return added
end

-- ZREM `name` from the folder index `index` (and its sub-folder set); 1 when it was there.
local function remove_name(index, name, subs)
  local removed = redis.call('ZREM', index, name)
  if removed == 1 and is_folder_name(name) then
    redis.call('ZREM', subs or (index .. SUBFOLDERS), name)
  end
  return removed
end

