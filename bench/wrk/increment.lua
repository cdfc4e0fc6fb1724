-- Increment a counter in things spread over BENCH_KEYS paths (each one read, added to and
-- written back atomically: spreading keeps it from measuring contention on one thing).
function init(args)
  prepare("PATCH", {["Content-Type"] = "application/json"},
    function(i) return '{"count":{".sv":{"increment":1}}}' end)
end
