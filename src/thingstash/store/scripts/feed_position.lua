-- The change feed's position: the id of the last event ever added to it ("0-0" when the feed
-- has never had one). Prepended to the scripts that answer it (position.lua, list.lua).
local function feed_position(stream)
  if redis.call('EXISTS', stream) == 0 then
    return '0-0'
  end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return info[i + 1]
    end
  end
  return '0-0'
end

