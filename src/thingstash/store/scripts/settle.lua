-- Settle entries of one shard of the expiry schedule (Redis Cluster: the thing is elsewhere):
-- an entry whose thing is gone is taken out, one still alive gets its real end. Only entries
-- that still have the score the reaper read are changed: a write since, or another reaper,
-- wins. Taking an entry out is the claim: only the reaper that did it records the expiry.
-- KEYS[1] = a shard of the expiry schedule
-- ARGV = triples: a path, the score read, the new score ("" to take the entry out)
-- returns for each triple 1 when it was changed, 0 when it had changed meanwhile
local changed = {}
for i = 1, #ARGV, 3 do
  local path, score = ARGV[i], redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == '' then
      redis.call('ZREM', KEYS[1], path)
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 2], path)
    end
    changed[#changed + 1] = 1
  else
    changed[#changed + 1] = 0
  end
end
return changed
