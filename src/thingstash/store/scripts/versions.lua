-- The versions of some things and the index declarations' generation, read in one step (by
-- write_together, between its WATCH and its MULTI).
-- KEYS[1..n-1] = the things' keys
-- KEYS[n] = the index declarations' generation
-- returns {each thing's 16-character version or "" when absent, ..., the generation or "0"}
local found = {}
for i = 1, #KEYS - 1 do
  found[i] = redis.call('GETRANGE', KEYS[i], 0, 15)
end
found[#KEYS] = redis.call('GET', KEYS[#KEYS]) or '0'
return found
