-- The change feed's position (feed_position.lua, prepended).
-- KEYS[1] = the change feed stream
-- returns the id of the last event ever added to it, or "0-0" when it has never had one
return feed_position(KEYS[1])
