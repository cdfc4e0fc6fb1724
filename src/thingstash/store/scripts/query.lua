-- One page of a query from an index (one Redis; on a cluster the index's slot), atomically.
-- KEYS[1] = the index's sorted set (members: key of the value, then the name)
-- KEYS[2] = the index's hash (name -> member), for `around`
-- KEYS[3] = the declarations' generation (absent on a cluster: checked apart)
-- ARGV[1] = the generation the caller's declarations are from
-- ARGV[2] = "page", "around" or "count"
-- ARGV[3], ARGV[4] = the lowest and highest member (ZRANGE BYLEX syntax)
-- ARGV[5] = "desc" for the reverse order
-- ARGV[6] = the page's size
-- ARGV[7] = with around, the thing's name
-- returns {rank of the first, 1 if more follow, members...} for a page (rank 1-based in the
-- whole order), {-1} when `around` names no thing, {count} for a count
if KEYS[3] and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then
  return redis.error_reply('STALE_INDEXES declarations changed: reload them')
end
local zset, mode, low, high = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local desc, limit = ARGV[5] == 'desc', tonumber(ARGV[6])
if mode == 'count' then
  return {redis.call('ZLEXCOUNT', zset, low, high)}
end
local total = redis.call('ZCARD', zset)
if mode == 'around' then
  local member = redis.call('HGET', KEYS[2], ARGV[7])
  if not member then
    return {-1}
  end
  local at = desc and redis.call('ZREVRANK', zset, member) or redis.call('ZRANK', zset, member)
  if not at then
    return {-1}
  end
  local first = math.max(0, math.min(at - math.floor((limit - 1) / 2), total - limit))
  local page
  if desc then
    page = redis.call('ZRANGE', zset, first, first + limit - 1, 'REV')
  else
    page = redis.call('ZRANGE', zset, first, first + limit - 1)
  end
  local reply = {first + 1, (first + limit < total) and 1 or 0}
  for i = 1, #page do reply[#reply + 1] = page[i] end
  return reply
end
local page
if desc then
  page = redis.call('ZRANGE', zset, high, low, 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)
else
  page = redis.call('ZRANGE', zset, low, high, 'BYLEX', 'LIMIT', 0, limit + 1)
end
local rank = 0
if #page > 0 then
  if desc then
    rank = redis.call('ZREVRANK', zset, page[1]) + 1
  else
    rank = redis.call('ZRANK', zset, page[1]) + 1
  end
end
local reply = {rank, #page > limit and 1 or 0}
for i = 1, math.min(#page, limit) do reply[#reply + 1] = page[i] end
return reply
