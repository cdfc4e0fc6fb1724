-- Read several things and their remaining lifetimes in one step (the things of a listing page).
-- KEYS[1..n] = the things' keys (all on one server: a Redis Cluster lists another way)
-- ARGV[1] = "values" to read each thing whole, anything else to read its version only
-- ARGV[2] = with values, the most payload bytes to read: the things are read in order until the
--           next one would pass it (the first one found is read whatever its size), so the
--           memory one page takes, here and in the client, stays bounded
-- returns {payload 1, pttl 1, payload 2, pttl 2, ...}, false and false for a thing that is gone;
-- shorter than 2n when the budget ended the page early (its things after that are not read)
local whole = ARGV[1] == 'values'
local budget = tonumber(ARGV[2])
local used = 0
local found = {}
for i = 1, #KEYS do
  local payload
  if whole then
    local size = redis.call('STRLEN', KEYS[i])
    if used > 0 and used + size > budget then
      break
    end
    used = used + size
    payload = size > 0 and redis.call('GET', KEYS[i])
  else
    payload = redis.call('GETRANGE', KEYS[i], 0, 15)
    payload = payload ~= '' and payload
  end
  found[2 * i - 1] = payload
  found[2 * i] = payload and redis.call('PTTL', KEYS[i])
end
return found
