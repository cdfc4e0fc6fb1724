-- PUT (replace) things spread over BENCH_KEYS paths; BENCH_BODY is the JSON object sent.
local body = os.getenv("BENCH_BODY")
function init(args)
  prepare("PUT", {["Content-Type"] = "application/json"}, function(i) return body end)
end
