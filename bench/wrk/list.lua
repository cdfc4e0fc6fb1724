-- GET one listing page (the default 100 entries) of a folder filled beforehand.
function init(args)
  local folder = wrk.format("GET", os.getenv("BENCH_PREFIX"))
  prepared[1] = folder
end
