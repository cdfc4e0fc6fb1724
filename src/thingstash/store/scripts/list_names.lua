-- The names of many folders in one step (a Firebase read lists a level of its tree at once):
-- a pipeline of as many ZRANGEs costs the client more to send than Redis to answer.
-- KEYS[1..n] = the folders' indexes (all on one server: a Redis Cluster pipelines instead)
-- ARGV[1] = the most names to return per folder
-- ARGV[2..n+1] = where each folder's names start, as ZRANGE BYLEX takes it: "-", or "(" and the
--                name they follow
-- returns for each folder, in order, its names (a sub-folder's ending in "/")
local limit = tonumber(ARGV[1])
local listed = {}
for i = 1, #KEYS do
  listed[i] = redis.call('ZRANGE', KEYS[i], ARGV[i + 1], '+', 'BYLEX', 'LIMIT', 0, limit)
end
return listed
