-- wrk.lua — tlsward's request generator for bench/compare.sh.
-- GET <PATH_PREFIX><random id in 1..MAX_ID>, or always STATIC_PATH when it is set; with
-- TOKEN set, every request carries "Authorization: Bearer $TOKEN". Prints one RESULT line
-- (latencies in ms) at the end.
local max_id = tonumber(os.getenv("MAX_ID") or "10000")
local prefix = os.getenv("PATH_PREFIX") or "/users/"
local static = os.getenv("STATIC_PATH")
local token = os.getenv("TOKEN")
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  math.randomseed(os.time() + 7919 * tid)
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  if static and static ~= "" then
    return wrk.format("GET", static)
  end
  return wrk.format("GET", prefix .. math.random(1, max_id))
end

function done(s, lat, req)
  local e = s.errors
  local ms = function(us) return us / 1000 end
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "errors=%d non2xx=%d\n",
    s.requests, s.requests / (s.duration / 1e6),
    ms(lat:percentile(50)), ms(lat:percentile(99)), ms(lat.max),
    e.connect + e.read + e.write + e.timeout, e.status))
end
