-- Query indexes: prepended to every script that writes or removes things (store/indexes.py),
-- so that each write keeps the indexes of its folder in the same atomic step.
-- A caller that keeps indexes ends KEYS and ARGV with a section for them, marked by
-- ARGV[#ARGV] == '\0ix' (no name or number a script takes starts with a NUL byte):
--   KEYS tail: the declarations' generation, then a sorted set and a hash (name -> member)
--     for each index of a folder written here
--   ARGV tail: the generation the caller's declarations are from, then one quadruple per
--     change: the index's number (1 for the first pair), the thing's name, its new member ('' to
--     remove it), and the position in KEYS of the thing's key (a removal applies only once
--     that key is gone: a delete whose precondition failed, a thing reaped alive, keep theirs);
--     then how many keys the tail has, how many changes, and the marker.
-- The script below sees its own KEYS and ARGV only. A caller whose declarations are stale is
-- refused before anything is written (STALE_INDEXES): it reloads them and sends again.
local index_keys, index_changes = {}, {}
local own_keys, own_args = KEYS, ARGV
if ARGV[#ARGV] == '\0ix' then
  local key_count, change_count = tonumber(ARGV[#ARGV - 2]), tonumber(ARGV[#ARGV - 1])
  local first_key, first_arg = #KEYS - key_count, #ARGV - 3 - 4 * change_count - 1
  if (redis.call('GET', KEYS[first_key + 1]) or '0') ~= ARGV[first_arg + 1] then
    return redis.error_reply('STALE_INDEXES declarations changed: reload them')
  end
  own_keys, own_args = {}, {}
  for i = 1, first_key do own_keys[i] = KEYS[i] end
  for i = 1, first_arg do own_args[i] = ARGV[i] end
  for i = first_key + 1, #KEYS do index_keys[#index_keys + 1] = KEYS[i] end
  for i = first_arg + 2, #ARGV - 3 do index_changes[#index_changes + 1] = ARGV[i] end
end
local KEYS, ARGV = own_keys, own_args

-- Apply the section's changes: called by the script where its write has happened.
local function apply_indexes()
  for i = 1, #index_changes, 4 do
    local pair, name, member = tonumber(index_changes[i]), index_changes[i + 1], index_changes[i + 2]
    local at = tonumber(index_changes[i + 3])
    if member ~= '' or at == 0 or redis.call('EXISTS', KEYS[at]) == 0 then
      local zset, hash = index_keys[2 * pair], index_keys[2 * pair + 1]
      local old = redis.call('HGET', hash, name)
      if old ~= member then
        if old then
          redis.call('ZREM', zset, old)
        end
        if member == '' then
          redis.call('HDEL', hash, name)
        else
          redis.call('ZADD', zset, 0, member)
          redis.call('HSET', hash, name, member)
        end
      end
    end
  end
end

