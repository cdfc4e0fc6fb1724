-- Read a thing and its remaining lifetime in one step.
-- KEYS[1] = the thing's key
-- returns {payload, pttl in ms} or nil when the thing does not exist
local payload = redis.call('GET', KEYS[1])
if not payload then
  return false
end
return {payload, redis.call('PTTL', KEYS[1])}
