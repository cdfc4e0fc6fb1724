-- Store many things whole, unconditionally, in one step (a chunk of a bulk import): for each,
-- (A sub-folder's entry added or removed takes its folder's sub-folder set along: folders.lua,
-- which names the set after the index's key; no other key is written for it.)
-- what put.lua does without preconditions. Each folder index gets its new names in one ZADD.
-- KEYS[1] = the change feed stream
-- KEYS[2] = the expiry schedule
-- KEYS[3..n+2] = the n things' keys
-- KEYS[n+3..] = the folder indexes to add names to, each once
-- ARGV[1] = n
-- ARGV[2] = the feed's approximate maximum length
-- ARGV[3 + 4(i-1) .. 6 + 4(i-1)] = thing i's payload (16-character version then the JSON),
--   lifetime in ms, path (for the feed and the schedule), and when its lifetime ends (unix ms)
-- then, for each folder index in KEYS order: how many names, then the names
-- returns {1 created or 2 replaced, event id} for each thing, flattened
local n = tonumber(ARGV[1])
local replies = {}
for i = 1, n do
  local key, at = KEYS[i + 2], 4 * i - 1
  local existed = redis.call('EXISTS', key)
  redis.call('SET', key, ARGV[at], 'PX', ARGV[at + 1])
  redis.call('ZADD', KEYS[2], ARGV[at + 3], ARGV[at + 2])
  replies[2 * i - 1] = existed == 1 and 2 or 1
  replies[2 * i] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
    'e', 'put', 'p', ARGV[at + 2], 'd', ARGV[at], 't', ARGV[at + 1])
end
apply_indexes()
local at = 4 * n + 3
for k = n + 3, #KEYS do
  local count = tonumber(ARGV[at])
  -- Things' names a few hundred per ZADD (unpack() has a limit on how many values it
  -- spreads); a sub-folder's alone (a few per chunk), as its set follows (folders.lua).
  local members = {}
  for j = 1, count do
    local name = ARGV[at + j]
    if is_folder_name(name) then
      add_name(KEYS[k], name)
    else
      members[#members + 1] = 0
      members[#members + 1] = name
      if #members == 1000 then
        redis.call('ZADD', KEYS[k], unpack(members))
        members = {}
      end
    end
  end
  if #members > 0 then
    redis.call('ZADD', KEYS[k], unpack(members))
  end
  at = at + count + 1
end
return replies
