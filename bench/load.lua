-- wrk script: a logged-in mix of report requests.
-- COOKIE (name=value of the session) and USER_AGENT come from the
-- environment; the session is tied to the user agent that logged in.
local cookie = os.getenv("COOKIE")
local agent = os.getenv("USER_AGENT") or "ctv-bench"
local year = os.getenv("YEAR") or "2026"
local prior = tostring(tonumber(year) - 1)

local paths = {
  "/reports/revenue?year=" .. year,
  "/reports/revenue?year=" .. year .. "&measure=net",
  "/reports/revenue?year=" .. prior,
  "/reports/revenue?year=" .. year .. "&ae=Maria+Chen",
  "/reports/revenue?year=" .. year .. "&market=LAX&measure=net",
  "/reports/revenue?year=" .. year .. "&format=csv&table=customers",
  "/reports/ae?year=" .. year,
  "/reports/ae?year=" .. prior,
  "/reports/ae?year=" .. year .. "&format=csv&table=pacing",
  "/reports/languages?year=" .. year,
  "/reports/languages?year=" .. year .. "&measure=net",
  "/reports/languages?year=" .. prior .. "&format=csv&table=grid",
  "/reports/months",
  "/reports/months?format=csv&table=months",
  "/reports/",
}

local threads = {}
local counter = 0
bad = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counter = math.random(#paths)
  bad = 0
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter],
                    {["Cookie"] = cookie, ["User-Agent"] = agent})
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local non2xx = 0
  for _, thread in ipairs(threads) do
    non2xx = non2xx + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"non_2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, non2xx,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
