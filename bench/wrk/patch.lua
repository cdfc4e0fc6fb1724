-- PATCH (JSON Merge Patch) things spread over BENCH_KEYS paths, written beforehand.
function init(args)
  prepare("PATCH", {["Content-Type"] = "application/merge-patch+json"},
    function(i) return '{"value":' .. i .. ',"unit":"C"}' end)
end
