-- wrk-count.lua — exactly STOP_AFTER responses (per wrk thread), then stop; GET STATIC_PATH
-- (default /), with "Authorization: Bearer $TOKEN" when TOKEN is set, or GET
-- /users/{random 1..10000} when API=1. Prints one RESULT line with the responses counted
-- and exits (wrk itself would wait out its -d). For bench/instructions.sh, which counts the
-- server's instructions per request; run it with one thread (-t1).
local stop_after = tonumber(os.getenv("STOP_AFTER") or "1000")
local path = os.getenv("STATIC_PATH") or "/"
local api = os.getenv("API") == "1"
local token = os.getenv("TOKEN")
local seen = 0
local bad = 0

function init(args)
  math.randomseed(7919)
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  if api then
    return wrk.format("GET", "/users/" .. math.random(1, 10000))
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 then bad = bad + 1 end
  if seen >= stop_after then
    io.write(string.format("RESULT requests=%d non2xx=%d\n", seen, bad))
    io.stdout:flush()
    os.exit(0)
  end
end
