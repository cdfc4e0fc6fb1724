-- One step of building a folder's sub-folder set (folders.lua) from its index: for a store
-- written by an earlier version, which kept none. The sub-folders among the next names of the
-- index join the set, and names the set holds in that range without the index leave it, in one
-- atomic step; writes between steps keep the set themselves, so the walk ends with it exact.
-- KEYS[1] = the folder index
-- KEYS[2] = its sub-folder set
-- ARGV[1] = where to start: "-" or "(name" (after that name)
-- ARGV[2] = how many names to read
-- returns {the last name read, or false when the index ends there; the sub-folders read...}
local count = tonumber(ARGV[2])
local names = redis.call('ZRANGE', KEYS[1], ARGV[1], '+', 'BYLEX', 'LIMIT', 0, count)
local ended = #names < count
local reply = {false}
if not ended then
  reply[1] = names[#names]
end
for _, name in ipairs(names) do
  if string.byte(name, -1) == 47 then
    redis.call('ZADD', KEYS[2], 0, name)
    reply[#reply + 1] = name
  end
end
local high = ended and '+' or ('[' .. names[#names])
for _, name in ipairs(redis.call('ZRANGE', KEYS[2], ARGV[1], high, 'BYLEX')) do
  if not redis.call('ZSCORE', KEYS[1], name) then
    redis.call('ZREM', KEYS[2], name)
  end
end
return reply
