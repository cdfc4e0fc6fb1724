-- Which incarnation of a node holds the change feed: its replication id, which a replica
-- promoted by a failover (or a node restarted without its data) changes.
-- KEYS[1] = the change feed stream (only to route this to the node that holds it)
-- returns the node's master_replid
local info = redis.call('INFO', 'replication')
return string.match(info, 'master_replid:(%w+)')
