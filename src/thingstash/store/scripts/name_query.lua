-- One page of a query by name ($name), or a count, from a folder's own index: its things
-- only. The index holds sub-folders beside the things; its sub-folder set (folders.lua) says
-- how many lie in any range of names, so a rank or a count takes O(log n), and a page reads its
-- things and the sub-folders among them, passing over at most ARGV[7] of those.
-- KEYS[1] = the folder index
-- KEYS[2] = its sub-folder set
-- ARGV[1] = "page", "around" or "count"
-- ARGV[2], ARGV[3] = the lowest and highest name (ZRANGE BYLEX syntax)
-- ARGV[4] = "desc" for the reverse order
-- ARGV[5] = the page's size
-- ARGV[6] = with around, the thing's name
-- ARGV[7] = the most sub-folder names one page passes over: past them it ends early
-- returns {rank of the first (1-based in the whole order), 1 if more follow, the last name read
-- when the page ended early ('' otherwise), the names...}, {-1} when `around` names no thing,
-- {count} for a count
local index, subs, mode = KEYS[1], KEYS[2], ARGV[1]
local low, high, desc, limit = ARGV[2], ARGV[3], ARGV[4] == 'desc', tonumber(ARGV[5])
local budget = tonumber(ARGV[7])

if mode == 'count' then
  return {redis.call('ZLEXCOUNT', index, low, high) - redis.call('ZLEXCOUNT', subs, low, high)}
end

local function is_folder_name(name)
  return string.byte(name, -1) == 47
end

-- The 0-based position of the thing `name` among the things, in the query's direction.
local function position(name)
  if desc then
    return redis.call('ZREVRANK', index, name) - redis.call('ZLEXCOUNT', subs, '(' .. name, '+')
  end
  return redis.call('ZRANK', index, name) - redis.call('ZLEXCOUNT', subs, '-', '(' .. name)
end

-- Up to `want` things from the bound `from` towards `to` (descending names when `reverse`),
-- passing over sub-folders. Returns them, and the last name read when the budget of
-- sub-folders ran out first (the page ends there).
local function things(from, to, reverse, want)
  local found, passed, ask = {}, 0, want
  while want > 0 do
    local batch
    if reverse then
      batch = redis.call('ZRANGE', index, from, to, 'BYLEX', 'REV', 'LIMIT', 0, ask)
    else
      batch = redis.call('ZRANGE', index, from, to, 'BYLEX', 'LIMIT', 0, ask)
    end
    for _, name in ipairs(batch) do
      if is_folder_name(name) then
        passed = passed + 1
      elseif #found < want then
        found[#found + 1] = name
      end
    end
    if #found >= want or #batch < ask then
      return found, nil
    end
    if passed >= budget then
      return found, batch[#batch]
    end
    from = '(' .. batch[#batch]
    -- a long run of sub-folders is passed in a few reads, not one per missing thing
    ask = math.min(math.max(want - #found, 2 * ask), budget)
  end
  return found, nil
end

local reply
if mode == 'around' then
  local target = ARGV[6]
  if is_folder_name(target) or not redis.call('ZSCORE', index, target) then
    return {-1}
  end
  local at = position(target)
  local total = redis.call('ZCARD', index) - redis.call('ZCARD', subs)
  local first = math.max(0, math.min(at - math.floor((limit - 1) / 2), total - limit))
  -- the things before it (nearest first), then it and those after it, one more to tell
  local before = things('(' .. target, desc and '+' or '-', not desc, at - first)
  local after, cut = things('[' .. target, desc and '-' or '+', desc, limit - #before + 1)
  reply = {at - #before + 1, (#after > limit - #before or cut) and 1 or 0, cut or ''}
  for i = #before, 1, -1 do
    reply[#reply + 1] = before[i]
  end
  for i = 1, math.min(#after, limit - #before) do
    reply[#reply + 1] = after[i]
  end
  return reply
end

local from, to = low, high
if desc then
  from, to = high, low
end
local found, cut = things(from, to, desc, limit + 1)
reply = {found[1] and position(found[1]) + 1 or 0, (#found > limit or cut) and 1 or 0, cut or ''}
for i = 1, math.min(#found, limit) do
  reply[#reply + 1] = found[i]
end
return reply
