-- (Before put.lua, one Redis only.) A judged write made outside the judged writes' turn
-- (store/turn.py) waits while another write holds it: {-1, false}, nothing written. The turn's
-- key is named after the feed's, KEYS[2] = "<prefix>:feed": "<prefix>:turn".
if redis.call('EXISTS', string.sub(KEYS[2], 1, -5) .. 'turn') == 1 then
  return {-1, false}
end
