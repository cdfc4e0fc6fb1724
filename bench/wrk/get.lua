-- GET things spread over BENCH_KEYS paths, written beforehand.
function init(args)
  prepare("GET", nil, nil)
end
