-- The change feed's position: the id of the last event ever added to it.
-- KEYS[1] = the change feed stream
-- returns that id, or "0-0" when the feed has never had an event
if redis.call('EXISTS', KEYS[1]) == 0 then
  return '0-0'
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    return info[i + 1]
  end
end
return '0-0'
