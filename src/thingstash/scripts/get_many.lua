-- Read several things and their remaining lifetimes in one step (the things of a listing page).
-- KEYS[1..n] = the things' keys (all on one server: a Redis Cluster lists another way)
-- returns {payload 1, pttl 1, payload 2, pttl 2, ...}, false and false for a thing that is gone
local found = {}
for i = 1, #KEYS do
  local payload = redis.call('GET', KEYS[i])
  found[2 * i - 1] = payload
  found[2 * i] = payload and redis.call('PTTL', KEYS[i])
end
return found
