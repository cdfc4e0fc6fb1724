-- What a resuming watcher needs to know of the change feed, without its payloads.
-- KEYS[1] = the change feed stream
-- returns {last generated id, first retained id, entries ever added (-1 if unknown), length},
-- or nil when the feed does not exist
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local state = {}
for i = 1, #info, 2 do
  state[info[i]] = info[i + 1]
end
local first = state['recorded-first-entry-id']
if not first then
  first = state['first-entry'] and state['first-entry'][1] or '0-0'
end
return {state['last-generated-id'], first, state['entries-added'] or -1, state['length']}
