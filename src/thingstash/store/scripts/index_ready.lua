-- Mark an index ready (its build is done), unless it was dropped meanwhile.
-- KEYS[1] = the declarations (hash: id -> JSON)
-- KEYS[2] = the declarations' generation
-- ARGV[1] = the index's id
-- ARGV[2] = its declaration, state "ready"
-- returns 1 when marked, 0 when the index is no longer declared
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
