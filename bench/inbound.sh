#!/usr/bin/env bash
# Inbound safety under load (issue 9), against `regkeep serve` (release, SQLite) on loopback:
#   1. flood: 30 s of wrong passwords (a new random one per request) at concurrency 64 from one
#      client address, while a second client makes valid requests as another user from another
#      address; then the same flood with a new client address per request (a botnet). Reports the
#      server's peak RSS (VmHWM), the valid client's latency, the flood's 401/429 counts, and that
#      the correct password still works after. Goals: peak < 200 MiB, valid p99 < 50 ms, some 429s.
#   2. legitimate load: wrk -c256 -d70s with one valid credential, auth_cache_seconds 20 (three
#      cache expiries). Goals: peak RSS < 150 MiB, p99 < 20 ms, 0 errors.
#   3. slow clients: 2,000 idle + 2,000 half-header sockets held against a server started under
#      `prlimit --nofile=1024`; /health timed 20 times while they are held; how many of the held
#      sockets the server closed within the header timeout. Goal: /health < 100 ms.
# Client addresses are told apart with X-Forwarded-For from a trusted proxy (loopback).
#
# Usage: bench/inbound.sh        Needs wrk, curl, python3 (scripts/install-deps.sh). ~3 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --release --bin regkeep
bin=$PWD/target/release/regkeep
work=$(mktemp -d)
pid=
stop() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap 'stop; rm -rf "$work"' EXIT
port=18620
url=http://127.0.0.1:$port
admin_pass=$(openssl rand -hex 16)
ops_pass=$(openssl rand -hex 16)

start() { # extra env...
    rm -rf "$work/data"
    env REGKEEP_DATA_DIR="$work/data" REGKEEP_LISTEN=127.0.0.1:$port REGKEEP_LOG_LEVEL=warn \
        REGKEEP_TRUSTED_PROXIES=127.0.0.1/32 REGKEEP_DEFAULT_ADMIN_PASSWORD="$admin_pass" "$@" \
        "$bin" serve 2>>"$work/log" &
    pid=$!
    local t0=$SECONDS
    until curl -sf "$url/health" >/dev/null; do
        ((SECONDS - t0 < 30)) || { cat "$work/log" >&2; echo "regkeep not ready" >&2; exit 1; }
        sleep 0.05
    done
}
rss() { awk -v k="$1" '$1 == k":" {print int($2 / 1024)}' "/proc/$pid/status"; }
b64() { printf '%s' "$1" | base64 -w0; }

cat >"$work/flood.lua" <<'LUA'
-- A new random password on every request; the client address from FLOOD_ADDR, or a new one on
-- every request when it is "random".
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d?%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local addr = os.getenv("FLOOD_ADDR")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) c401 = 0; c429 = 0; other = 0 end
request = function()
  local from = addr
  if addr == "random" then
    from = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  end
  local pw = tostring(math.random(1, 2147483647)) .. tostring(math.random(1, 2147483647))
  return wrk.format("GET", "/v1/user", {
    ["Authorization"] = "Basic " .. b64("admin:" .. pw),
    ["X-Forwarded-For"] = from,
  })
end
response = function(status)
  if status == 401 then c401 = c401 + 1 elseif status == 429 then c429 = c429 + 1 else other = other + 1 end
end
done = function()
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("c401"); b = b + t:get("c429"); c = c + t:get("other") end
  io.stderr:write(string.format("flood answers: 401=%d 429=%d other=%d\n", a, b, c))
end
LUA
cat >"$work/valid.lua" <<LUA
wrk.headers["Authorization"] = "Basic $(b64 "ops:$ops_pass")"
wrk.headers["X-Forwarded-For"] = "198.51.100.10"
LUA
printf 'user = "admin:%s"\n' "$admin_pass" >"$work/curl.cfg"
setup_ops() {
    curl -sf -K "$work/curl.cfg" -H 'content-type: application/json' -o /dev/null -d '{"name":"ops"}' "$url/v1/accounts"
    curl -sf -K "$work/curl.cfg" -H 'content-type: application/json' -o /dev/null \
        -d "{\"username\":\"ops\",\"password\":\"$ops_pass\"}" "$url/v1/accounts/ops/users"
}
percentile() { awk -v p="$1" '$1 == p"%" {print $2}' "$2"; }

for mode in one-address random; do
    start
    setup_ops
    echo "== flood ($mode): 30 s of random wrong passwords for admin at -c64, valid requests as ops at -c4"
    echo "server RSS before: $(rss VmRSS) MiB"
    FLOOD_ADDR=$([[ $mode == random ]] && echo random || echo 203.0.113.66) \
        wrk -t1 -c64 -d30s -s "$work/flood.lua" "$url/v1/user" >"$work/flood.out" 2>"$work/flood.err" &
    flood=$!
    sleep 1
    wrk -t1 -c4 -d27s --latency -s "$work/valid.lua" "$url/v1/user" >"$work/valid.out"
    wait "$flood"
    grep "flood answers" "$work/flood.err" || true
    echo "flood: $(awk '/Requests\/sec/ {print $2}' "$work/flood.out") req/s"
    echo "valid client: $(awk '/Requests\/sec/ {print $2}' "$work/valid.out") req/s, p50 $(percentile 50 "$work/valid.out"), p99 $(percentile 99 "$work/valid.out"), non-2xx $(awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$work/valid.out")"
    echo "server peak RSS (VmHWM): $(rss VmHWM) MiB, after: $(rss VmRSS) MiB (goal < 200)"
    # The right password right after the flood, from a new address: the user's throttle may ask
    # it to wait (Retry-After); after that wait it gets in.
    curl -s -o /dev/null -D "$work/h" -H "X-Forwarded-For: 198.51.100.11" -u "admin:$admin_pass" "$url/v1/user"
    code=$(awk 'NR == 1 {print $2}' "$work/h")
    wait_s=$(awk 'tolower($1) == "retry-after:" {print $2 + 0}' "$work/h")
    if [[ $code == 429 ]]; then
        sleep "${wait_s:-1}"
        code2=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: 198.51.100.11" -u "admin:$admin_pass" "$url/v1/user")
        echo "admin, right password, new address, just after the flood: 429 Retry-After ${wait_s}s; after that wait: HTTP $code2"
    else
        echo "admin, right password, new address, just after the flood: HTTP $code"
    fi
    stop
done

echo "== legitimate load: wrk -c256 -d70s, one valid credential, auth_cache_seconds 20 (3 expiries)"
start REGKEEP_AUTH_CACHE_SECONDS=20
setup_ops
wrk -t2 -c256 -d70s --latency -s "$work/valid.lua" "$url/v1/user" >"$work/legit.out"
echo "$(awk '/Requests\/sec/ {print $2}' "$work/legit.out") req/s, p50 $(percentile 50 "$work/legit.out"), p99 $(percentile 99 "$work/legit.out"), max $(awk '/Latency/ {print $4; exit}' "$work/legit.out"), non-2xx $(awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$work/legit.out"), socket errors: $(grep -c 'Socket errors' "$work/legit.out" || true)"
echo "server peak RSS (VmHWM): $(rss VmHWM) MiB (goal < 150)"
stop

echo "== slow clients: 2,000 idle + 2,000 half-header sockets, server under prlimit --nofile=1024"
# env and prlimit exec what they run: $pid is the server itself.
start prlimit --nofile=1024:1024 -- env
python3 - "$port" <<'PY'
import resource, socket, sys, time, subprocess
port = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
held = []
for i in range(4000):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        print(f"connect {i} failed: {e}")
        continue
    if i % 2:
        s.sendall(b"GET /v1/user HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    held.append(s)
print(f"held {len(held)} sockets")
times = []
for _ in range(20):
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", f"http://127.0.0.1:{port}/health"], capture_output=True, text=True)
    times.append(((time.monotonic() - t0) * 1000, r.stdout))
    time.sleep(0.25)
codes = sorted({c for _, c in times})
ms = sorted(t for t, _ in times)
print(f"/health while they are held: codes {codes}, p50 {ms[len(ms)//2]:.1f} ms, max {ms[-1]:.1f} ms (goal < 100 ms)")
time.sleep(12)
closed = answered = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(64) == b"":
            closed += 1
        else:
            answered += 1  # a 408 to a half-sent request head, then the close
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"after 12 s (header timeout 10 s): {closed} held sockets closed and {answered} answered 408 by the server, of {len(held)}")
PY
grep -c "Too many open files" "$work/log" | xargs -I{} echo "server log lines 'Too many open files': {}"
stop
