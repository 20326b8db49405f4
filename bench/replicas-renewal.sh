#!/usr/bin/env bash
# Benchmark of ECR token renewal shared by replicas (docs/design.md §3.9: one minting lease per token
# key, table ecr_token_leases, lease 30 s). Inside the test namespace, against the ECR-API fixture
# (fixtures/ecr_api.py, which counts GetAuthorizationToken calls) and the peers' PostgreSQL, with one
# fresh database per measurement. Uses are `POST /v1/registries/{ecr}/check?login=false` (resolve
# the token, no registry contact), one every 0.5 s IN TOTAL (with three replicas, round-robin: one
# every 1.5 s per replica); every answer's token_usable_until must lie after the instant the request
# was sent (a "violation" otherwise).
#   1. One replica, fixture lifetime L: LIFETIMES x L seconds of uses; the fixture's call count.
#   2. Three replicas on one database, the same run: the call count, goal = (1) within one call.
#   3. kill -9 mid-mint: three replicas, fixture delay 8 s (lifetime 12 h); a cold use on A takes the
#      lease and waits on the fixture; 1 s later A is killed with SIGKILL; then uses on B and C:
#      the time from the kill to B's 200 with a valid token (goal: <= lease 30 s + the delay), and
#      the fixture's calls (expected 2: A's lost one and one more).
# Beside regkeep's own verdict (usable_until) the drivers count "AWS-expired" answers: given when
# every token the fixture had issued by the answer was past its expiresAt (its latest call as first
# seen by polling /_calls after each use, + delay + L: an upper bound on expiry, so the count is a
# lower bound). regkeep's lifecycle defaults are fixed in `regkeep serve` (crates/engine/src/
# ecr_tokens.rs: floor 60 s, margin 30 s, tick 15 s): a token with less than floor + margin = 90 s
# of life is "nearly expired on arrival" and used for 60 s whatever its expiry, with no half-life
# renewal. L < 90 therefore measures the floor, not the
# half-life renewal (the script says so); e.g. `bench/replicas-renewal.sh 92 2` exercises the latter.
#
# Usage: bench/replicas-renewal.sh [LIFETIME_SECONDS] [LIFETIMES]   (defaults 92 and 6: half-life
#        renewal over six token lifetimes; runtime about 2 x LIFETIMES x L + 1.5 min, ~20 min). Needs root (the namespace). No build: runs $REGKEEP_BIN (default
#        target/release/regkeep if it exists, else target/debug/regkeep), e.g.
#            REGKEEP_BIN=/tmp/rk-bench-bin/regkeep bench/replicas-renewal.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${1:-} != --inner ]]; then
    if [[ -z ${REGKEEP_BIN:-} ]]; then
        if [[ -x target/release/regkeep ]]; then REGKEEP_BIN=target/release/regkeep; else REGKEEP_BIN=target/debug/regkeep; fi
    fi
    [[ -x $REGKEEP_BIN ]] || { echo "replicas-renewal: no executable $REGKEEP_BIN (build it, or set REGKEEP_BIN)" >&2; exit 1; }
    REGKEEP_BIN=$(realpath "$REGKEEP_BIN")
    export REGKEEP_BIN
    exec scripts/test-shell.sh bash bench/replicas-renewal.sh --inner "${1:-92}" "${2:-6}"
fi
lifetime=$2 lifetimes=$3
[[ $lifetime =~ ^[0-9]+$ && $lifetimes =~ ^[0-9]+$ && $lifetime -gt 0 && $lifetimes -gt 0 ]] \
    || { echo "replicas-renewal: LIFETIME_SECONDS and LIFETIMES must be positive integers" >&2; exit 1; }
: "${REGKEEP_BIN:?run bench/replicas-renewal.sh without --inner}" "${REGKEEP_TEST_ECR_FIXTURE_URL:?}" \
    "${REGKEEP_TEST_POSTGRES_URL:?}" "${REGKEEP_TEST_REGISTRY_ECR:?needs the test namespace}"
duration=$((lifetime * lifetimes))
LEASE=30 KILL_DELAY=8 FLOOR=60 MARGIN=30   # regkeep's LifecycleSettings::default() (not configurable)
fixture=$REGKEEP_TEST_ECR_FIXTURE_URL
ecr=$REGKEEP_TEST_REGISTRY_ECR
work=$(mktemp -d)
pids=()
dbs=()
cleanup() {
    local p db
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for db in "${dbs[@]}"; do
        psql -q "$REGKEEP_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    curl -sf -X POST "$fixture/_reset" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
admin_pass=$(openssl rand -hex 16)
export BENCH_AUTH
BENCH_AUTH=$(printf 'admin:%s' "$admin_pass" | base64 -w0)
printf 'user = "admin:%s"\n' "$admin_pass" >"$work/curl.cfg"
path="/v1/registries/$ecr/check?login=false"

new_db() { # prints the URL of a fresh database
    local db=regkeep_bench_renew_$RANDOM$RANDOM
    psql -q "$REGKEEP_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    echo "${REGKEEP_TEST_POSTGRES_URL%/*}/$db"
}
# start PORT DB_URL NAME: one `regkeep serve` (shared key file per database), up when /health is.
start() {
    local port=$1 url=$2 name=$3 t0=$SECONDS
    AWS_ENDPOINT_URL_ECR=$fixture AWS_EC2_METADATA_DISABLED=true \
        REGKEEP_DATABASE_URL=$url REGKEEP_SECRET_KEY_FILE=$work/${url##*/}.key REGKEEP_DATA_DIR=$work/$name \
        REGKEEP_LISTEN=127.0.0.1:$port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
        REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass REGKEEP_AUTH_CACHE_SECONDS=3600 \
        "$REGKEEP_BIN" serve 2>>"$work/$name.log" &
    pids+=($!)
    last_pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
        kill -0 "$last_pid" 2>/dev/null || { echo "replica $name died at start:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
        ((SECONDS - t0 < 60)) || { echo "replica $name not up within 60 s" >&2; exit 1; }
        sleep 0.05
    done
    # Argon2id once per replica now (auth cache 1 h), not inside a measured use.
    curl -sf -K "$work/curl.cfg" "http://127.0.0.1:$port/v1/registries" -o /dev/null
}
register() { # BASE
    curl -sf -K "$work/curl.cfg" -H 'content-type: application/json' -o /dev/null \
        -d "{\"registry\":\"$ecr\",\"registry_user\":\"AKIABENCHRENEWAL01\",\"registry_pass\":\"bench-renewal-secret\",\"registry_type\":\"awsecr\"}" \
        "$1/v1/registries?validate=false"
}
fixture_control() { curl -sf -X POST -H 'content-type: application/json' -d "$1" "$fixture/_control" >/dev/null; }
stop_all() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
floor_warnings() { cat "$work"/*.log 2>/dev/null | grep -c 'expired on arrival' || true; }

cat >"$work/drive.py" <<'PY'
"""Steady uses (mode uses) or the kill -9 scenario (mode kill): events on stderr, a JSON summary on stdout."""
import base64, json, os, signal, sys, threading, time, urllib.request
from datetime import datetime

AUTH = os.environ["BENCH_AUTH"]
FIXTURE, PATH = os.environ["FIXTURE"], os.environ["CHECK_PATH"]


def get_calls():
    with urllib.request.urlopen(FIXTURE + "/_calls", timeout=5) as r:
        return json.load(r)["GetAuthorizationToken"]


def use(base, timeout):
    """One check; (status or error text, usable_until epoch or None, t_sent, t_answered)."""
    req = urllib.request.Request(base + PATH, method="POST", data=b"",
                                 headers={"Authorization": "Basic " + AUTH})
    t_sent = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = json.load(r)
            status = r.status
    except urllib.error.HTTPError as e:
        return e.code, None, t_sent, time.time()
    except Exception as e:  # connection refused/reset, timeout
        return type(e).__name__, None, t_sent, time.time()
    until = body.get("token_usable_until")
    until = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() if until else None
    return status, until, t_sent, time.time()


def uses(bases, duration, interval, lifetime, delay):
    start = time.time()
    calls_seen, call_times = get_calls(), []
    n = bad_status = violations = aws_expired = 0
    min_left, per_replica, slow = None, [0] * len(bases), 0.0
    i = 0
    while time.time() - start < duration:
        due = start + i * interval
        if due > time.time():
            time.sleep(due - time.time())
        k = i % len(bases)
        status, until, t_sent, t_done = use(bases[k], 60)
        # Calls seen by now started before now: the newest token expires at most now + delay + L
        # (so an answer counted "after AWS expiry" below surely was; the count is a lower bound).
        c = get_calls()
        if c > calls_seen:
            call_times += [time.time() - start] * (c - calls_seen)
            calls_seen = c
        i += 1
        n += 1
        per_replica[k] += 1
        slow = max(slow, t_done - t_sent)
        if status != 200 or until is None:
            bad_status += 1
            print(f"  t={t_sent - start:7.1f}s replica {k}: {status}", file=sys.stderr, flush=True)
            continue
        left = until - t_sent
        min_left = left if min_left is None else min(min_left, left)
        if left <= 0:
            violations += 1
            print(f"  t={t_sent - start:7.1f}s replica {k}: VIOLATION usable_until {left:.1f}s ago", file=sys.stderr, flush=True)
        if call_times and t_sent - start > call_times[-1] + delay + lifetime:
            aws_expired += 1
    final = get_calls()
    return {"uses": n, "per_replica": per_replica, "non_200": bad_status, "violations": violations,
            "aws_expired": aws_expired, "min_left": min_left, "slowest_use": slow, "calls": final,
            "call_times": [round(t, 1) for t in call_times], "elapsed": time.time() - start}


def lease_row(t_ref):
    """The lease row as 'holder, until = t_ref + N s' (there is one token key)."""
    row = os.popen("psql -tA \"$DB_URL\" -c 'SELECT holder, until FROM ecr_token_leases'").read().strip()
    if "|" not in row:
        return row or "(none)"
    holder, until = row.split("|", 1)
    return f"holder {holder}, until kill {int(until) - t_ref:+.1f} s"


def kill(bases, a_pid, delay):
    """A cold use on bases[0]; kill -9 A after 1 s; then B and C until each has a valid token."""
    res = {}
    a = {}
    ta = threading.Thread(target=lambda: a.update(r=use(bases[0], 90)), daemon=True)
    t0 = time.time()
    ta.start()
    time.sleep(1.0)
    res["calls_before_kill"] = get_calls()
    os.kill(a_pid, signal.SIGKILL)
    t_kill = time.time()
    res["lease_at_kill"] = lease_row(t_kill)  # still A's: read just after the kill
    print(f"  A (pid {a_pid}) killed {t_kill - t0:.2f}s after its cold use; fixture calls then: {res['calls_before_kill']}; lease row: {res['lease_at_kill']}", file=sys.stderr, flush=True)
    out = {}

    def until_valid(name, base):
        tries, errors, expired = 0, [], 0
        while time.time() - t_kill < 120:
            status, until, t_sent, t_done = use(base, 90)
            tries += 1
            if status == 200 and until is not None and until > t_sent:
                out[name] = {"after_kill": t_done - t_kill, "tries": tries, "errors": errors,
                             "expired": expired, "left": until - t_sent}
                return
            if status == 200:
                expired += 1
            errors.append(f"{status} after {t_done - t_kill:.1f}s")
            time.sleep(0.2)
        out[name] = {"after_kill": None, "tries": tries, "errors": errors, "expired": expired}

    threads = [threading.Thread(target=until_valid, args=(n, b)) for n, b in (("B", bases[1]), ("C", bases[2]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ta.join(1)
    res["A"] = str(a.get("r", ("still waiting",))[0])
    res.update(out)
    res["calls_after"] = get_calls()
    # Warm now: more uses must be immediate and call AWS no more.
    again = [use(b, 10) for b in bases[1:] for _ in range(5)]
    res["warm_after"] = {"ok": sum(1 for s, u, ts, td in again if s == 200 and u and u > ts),
                         "n": len(again), "slowest": max(td - ts for s, u, ts, td in again)}
    res["calls_final"] = get_calls()
    res["lease_after"] = lease_row(t_kill)
    return res


mode, bases = sys.argv[1], sys.argv[2].split(",")
if mode == "uses":
    r = uses(bases, float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
else:
    r = kill(bases, int(sys.argv[3]), float(sys.argv[4]))
print(json.dumps(r))
PY
cat >"$work/field.py" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(f"{v:.1f}" if isinstance(v, float) else v)
PY
field() { python3 "$work/field.py" "$@"; }   # JSON_TEXT KEY...: one value (floats to 0.1)

echo "== bench/replicas-renewal.sh: fixture lifetime L=${lifetime}s, run ${lifetimes} x L = ${duration}s per measurement; uses: POST .../check?login=false every 0.5 s in total"
echo "   regkeep: $REGKEEP_BIN; its lifecycle (fixed): floor ${FLOOR}s, margin ${MARGIN}s, renewal tick 15s, lease ${LEASE}s"
if ((lifetime < FLOOR + MARGIN)); then
    echo "   NOTE: L < floor + margin (${FLOOR}+${MARGIN} s): regkeep takes each token as 'nearly expired on arrival'"
    echo "         and uses it for ${FLOOR}s (usable_until = obtained + ${FLOOR}s), no half-life renewal: expect about"
    echo "         1 + ${duration}/${FLOOR} calls, and answers given after the token's real (AWS) expiry. L >= $((FLOOR + MARGIN + 1)) tests half-life renewal."
fi

# --- 1. one replica -------------------------------------------------------------------------------
url1=$(new_db)
start 18660 "$url1" one
register http://127.0.0.1:18660
curl -sf -X POST "$fixture/_reset" >/dev/null
fixture_control "{\"lifetime_seconds\": $lifetime, \"delay_seconds\": 0}"
echo "-- 1. one replica: ${duration}s of uses"
r1=$(FIXTURE=$fixture CHECK_PATH=$path python3 "$work/drive.py" uses http://127.0.0.1:18660 "$duration" 0.5 "$lifetime" 0)
stop_all
calls1=$(field "$r1" calls)
w1=$(floor_warnings)
echo "1. one replica:    GetAuthorizationToken calls $calls1 (at t = $(field "$r1" call_times) s); uses $(field "$r1" uses), non-200 $(field "$r1" non_200), violations $(field "$r1" violations), answers after AWS expiry $(field "$r1" aws_expired), least life left $(field "$r1" min_left) s, slowest use $(field "$r1" slowest_use) s"
rm -f "$work"/one.log

# --- 2. three replicas, one database --------------------------------------------------------------
url2=$(new_db)
start 18661 "$url2" r2a
start 18662 "$url2" r2b
start 18663 "$url2" r2c
register http://127.0.0.1:18661
curl -sf -X POST "$fixture/_reset" >/dev/null
fixture_control "{\"lifetime_seconds\": $lifetime, \"delay_seconds\": 0}"
echo "-- 2. three replicas, round-robin (same total rate: each replica one use every 1.5 s): ${duration}s of uses"
r2=$(FIXTURE=$fixture CHECK_PATH=$path python3 "$work/drive.py" uses http://127.0.0.1:18661,http://127.0.0.1:18662,http://127.0.0.1:18663 "$duration" 0.5 "$lifetime" 0)
stop_all
calls2=$(field "$r2" calls)
viol2=$(field "$r2" violations)
echo "2. three replicas: GetAuthorizationToken calls $calls2 (at t = $(field "$r2" call_times) s); uses $(field "$r2" uses) (per replica $(field "$r2" per_replica)), non-200 $(field "$r2" non_200), violations $viol2, answers after AWS expiry $(field "$r2" aws_expired), least life left $(field "$r2" min_left) s, slowest use $(field "$r2" slowest_use) s"
diff=$((calls2 - calls1))
if ((diff <= 1 && diff >= -1)) && (($(field "$r1" violations) == 0 && viol2 == 0)); then v=MET; else v="NOT MET"; fi
echo "   verdict: one replica $calls1 calls, three replicas $calls2 calls (difference $diff; goal within one), violations $(field "$r1" violations) + $viol2 (goal 0): $v"
echo "   regkeep 'expired on arrival' warnings: run 1: $w1, run 2: $(floor_warnings)"
rm -f "$work"/r2?.log

# --- 3. kill -9 mid-mint ---------------------------------------------------------------------------
url3=$(new_db)
start 18664 "$url3" r3a
pid_a=$last_pid
disown "$pid_a"   # killed on purpose below: no "Killed" job notice from bash
start 18665 "$url3" r3b
start 18666 "$url3" r3c
register http://127.0.0.1:18664
curl -sf -X POST "$fixture/_reset" >/dev/null
fixture_control "{\"lifetime_seconds\": 43200, \"delay_seconds\": $KILL_DELAY}"
echo "-- 3. kill -9 mid-mint: fixture delay ${KILL_DELAY}s, lifetime 12 h; cold use on A, kill -9 A after 1 s, then B and C"
r3=$(DB_URL=$url3 FIXTURE=$fixture CHECK_PATH=$path python3 "$work/drive.py" kill http://127.0.0.1:18664,http://127.0.0.1:18665,http://127.0.0.1:18666 "$pid_a" "$KILL_DELAY")
b_after=$(field "$r3" B after_kill)
c_after=$(field "$r3" C after_kill)
calls3=$(field "$r3" calls_final)
expired3=$(($(field "$r3" B expired) + $(field "$r3" C expired)))
echo "3. kill -9 A mid-mint: B valid token ${b_after} s after the kill (C: ${c_after} s); A's use ended with: $(field "$r3" A)"
echo "   fixture calls: $(field "$r3" calls_before_kill) before the kill, $(field "$r3" calls_after) when B and C had answered, $calls3 after 10 more warm uses (all valid: $(field "$r3" warm_after ok)/$(field "$r3" warm_after n), slowest $(field "$r3" warm_after slowest) s)"
echo "   errors before success: B $(field "$r3" B errors), C $(field "$r3" C errors); expired tokens handed out: $expired3"
echo "   lease row at the kill: $(field "$r3" lease_at_kill); at the end: $(field "$r3" lease_after)"
if [[ $b_after != None ]] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "$b_after" $((LEASE + KILL_DELAY)) \
    && ((calls3 == 2 && expired3 == 0)); then v=MET; else v="NOT MET"; fi
echo "   verdict: recovery ${b_after} s vs lease ${LEASE} s + fixture delay ${KILL_DELAY} s = $((LEASE + KILL_DELAY)) s; calls $calls3 (expected 2); expired 0 expected: $v"
