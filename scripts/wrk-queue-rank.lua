-- wrk script: GET /queues/{QUEUE}/users/{email}/rank, cycling through ACCOUNTS
-- (email<TAB>token lines), each request with its account's bearer token.
--   ACCOUNTS=accounts.tsv QUEUE=festival1 wrk -t2 -c64 -d10s -s scripts/wrk-queue-rank.lua http://127.0.0.1:8080
local accounts = {}
local n = 0
local queue = os.getenv("QUEUE")

function init(args)
  for line in io.lines(os.getenv("ACCOUNTS")) do
    local email, token = line:match("^([^\t]+)\t(.+)$")
    if email then
      accounts[#accounts + 1] = { path = "/queues/" .. queue .. "/users/" .. email .. "/rank",
                                  headers = { ["Authorization"] = "Bearer " .. token } }
    end
  end
  -- Each thread starts at a different place in the list.
  n = math.random(#accounts)
end

function request()
  n = n % #accounts + 1
  local a = accounts[(n * 7919) % #accounts + 1]
  return wrk.format("GET", a.path, a.headers)
end

function done(summary, latency, requests)
  io.write(string.format('{"loader":"wrk","requests":%d,"seconds":%.1f,"rps":%.0f,"mean_ms":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
