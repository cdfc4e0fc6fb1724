-- One page of a folder's listing and the change feed's position, in one step (so the position
-- is never later than the page: a watch from it misses nothing the page lacks).
-- KEYS[1] = the folder's index (the names directly in it, all scored 0)
-- KEYS[2] = the change feed stream
-- ARGV[1] = where the page starts, as ZRANGE BYLEX takes it: "-", or "(" and the name it follows
-- ARGV[2] = the most entries the page holds
-- ARGV[3] = "values" to read each thing whole, anything else to read its version only
-- ARGV[4] = with values, the most payload bytes to read: the things are read in order until
--           the next one would pass it (the first one is read whatever its size), so the memory
--           one page takes, here and in the client, stays bounded
-- ARGV[5] = a thing's key without its name and the closing brace: the key of "c" in this
--           folder is ARGV[5] .. "c" .. "}". The things' keys are known only once the index is
--           read, so they cannot be given as KEYS: one Redis allows that (a Redis Cluster does
--           not, and ClusterStore lists another way).
-- ARGV[6] = a folder index's key without the sub-folder's name and the closing brace, as
--           ARGV[5] for things: a sub-folder whose index is gone (emptied, left listed by a
--           store from before deletes dropped emptied folders in the same step) is left out
--           of the page and returned in `empty`, for the caller to drop (prune.lua)
-- returns {position, next, folders, things, gone, empty}:
--   position: the feed's (feed_position.lua)
--   next: the page's last name when more entries follow it, else false
--   folders: the names of the sub-folders on the page ("b/"), in order
--   things: for each thing on the page, in order: its name, the first 8 characters of its
--           version (its time), the seconds it has left (Thing.ttl: its pttl rounded up, 0 for
--           none; computed here, a step less per thing in the caller), and with values its
--           JSON (the payload after the version)
--   gone: the names of things indexed but no longer stored (expired, the expiry not yet
--         recorded): left out of the page, which the caller reads again once it recorded them
--   empty: the names of sub-folders left out as empty (ARGV[6]): the caller drops them
local position = feed_position(KEYS[2])
local limit = tonumber(ARGV[2])
local names = redis.call('ZRANGE', KEYS[1], ARGV[1], '+', 'BYLEX', 'LIMIT', 0, limit + 1)
local whole = ARGV[3] == 'values'
local budget = tonumber(ARGV[4])
local key_head = ARGV[5]
local folder_head = ARGV[6]
local folders, things, gone, empty = {}, {}, {}, {}
local used = 0
local last = math.min(#names, limit)
local more = #names > limit
for i = 1, last do
  local name = names[i]
  if string.byte(name, -1) == 47 then  -- "/": a sub-folder
    if redis.call('EXISTS', folder_head .. name .. '}') == 1 then
      folders[#folders + 1] = name
    else
      empty[#empty + 1] = name
    end
  else
    local key = key_head .. name .. '}'
    local payload
    if whole then
      payload = redis.call('GET', key)
      if payload and used > 0 and used + #payload > budget then
        last, more = i - 1, true  -- the page ends before this thing, with a cursor
        break
      end
      if payload then
        used = used + #payload
      end
    else
      payload = redis.call('GETRANGE', key, 0, 7)
      if payload == '' then
        payload = false
      end
    end
    if payload then
      local at = #things
      things[at + 1] = name
      things[at + 2] = whole and string.sub(payload, 1, 8) or payload
      local left_ms = redis.call('PTTL', key)
      things[at + 3] = left_ms > 0 and math.ceil(left_ms / 1000) or 0
      if whole then
        things[at + 4] = string.sub(payload, 17)
      end
    else
      gone[#gone + 1] = name
    end
  end
end
return {position, more and names[last] or false, folders, things, gone, empty}
