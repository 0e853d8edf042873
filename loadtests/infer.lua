-- wrk script: POST a real digits infer body (Open Inference Protocol v2) from many users.
--
-- Usage: wrk -t1 -c32 -d8s --latency -s loadtests/infer.lua http://127.0.0.1:8080/v2/models/digits/infer \
--          -- BODY_FILE [USERS [TOKEN]]
-- BODY_FILE holds the JSON body (loadtests/bench.py writes one from models/test_set.json). Each request carries
-- an `x-user-id` out of USERS (default 1000) so that outrider's sticky split sees many units, and with TOKEN an
-- `Authorization: Bearer TOKEN` header. The requests are formatted once in init(), so the script costs wrk next
-- to nothing per request.

local requests = {}
local count = 0
local next_index = 0

function init(args)
  local path = args[1] or error("usage: wrk ... -s infer.lua URL -- BODY_FILE [USERS]")
  local file = assert(io.open(path, "rb"))
  local body = file:read("*a")
  file:close()
  local users = tonumber(args[2] or "1000")
  local token = args[3]
  math.randomseed(7)
  count = 1000
  for k = 1, count do
    local headers = {
      ["Content-Type"] = "application/json",
      ["x-user-id"] = "user-" .. math.random(users),
    }
    if token then
      headers["Authorization"] = "Bearer " .. token
    end
    requests[k] = wrk.format("POST", nil, headers, body)
  end
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end
