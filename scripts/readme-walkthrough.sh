#!/usr/bin/env bash
# The README's five-minute walkthrough, followed as written with the installed binary, from
# another directory, with XDG_DATA_HOME set: each command's exit code, and how many failed.
# Substitutions only where the lab has no such host: the peers' plain-HTTP registry (--insecure,
# as the README says for a lab registry) and its test/hello:v1; `serve` allows loopback
# registries (the peers live on loopback).
#
# Usage: cargo install --locked --path . --root /tmp/rk-inst
#        REGKEEP_BIN_DIR=/tmp/rk-inst/bin scripts/readme-walkthrough.sh      (root: the namespace)
set -u
if [[ ${1:-} != --inner ]]; then
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    export REGKEEP_BIN_DIR=${REGKEEP_BIN_DIR:-$HOME/.cargo/bin}
    [[ -x $REGKEEP_BIN_DIR/regkeep ]] || { echo "readme-walkthrough: no $REGKEEP_BIN_DIR/regkeep: cargo install --locked --path . first" >&2; exit 1; }
    exec scripts/test-shell.sh bash "$PWD/scripts/readme-walkthrough.sh" --inner
fi
export PATH=$REGKEEP_BIN_DIR:$PATH
export XDG_DATA_HOME=/tmp/walk-xdg HOME=/tmp/walk-home
unset RUST_BACKTRACE
rm -rf /tmp/walk-xdg /tmp/walk-home /tmp/walk-dir /tmp/app-layout /tmp/app.tar /tmp/regkeep.log
mkdir -p /tmp/walk-home /tmp/walk-dir && cd /tmp/walk-dir
R=$REGKEEP_TEST_REGISTRY_HTTP
n=0; fails=0
run() { n=$((n+1)); echo "== [$n] $*"; "$@"; rc=$?; echo "-- exit $rc"; [[ $rc == 0 ]] || fails=$((fails+1)); }
# 1.
REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true regkeep serve 2>/tmp/regkeep.log &
srv=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:8228/health >/dev/null && break; sleep 0.1; done
# 2.
export REGKEEP_USER=admin REGKEEP_PASS="$(cat "${XDG_DATA_HOME:-$HOME/.local/share}/regkeep/admin_password")"
echo "admin password file read: ${#REGKEEP_PASS} characters"
# 3.
n=$((n+1)); echo "== [$n] printf ... | regkeep registry add $R $REGKEEP_TEST_REGISTRY_USER --password-stdin --insecure"
printf '%s\n' "$REGKEEP_TEST_REGISTRY_PASS" | regkeep registry add "$R" "$REGKEEP_TEST_REGISTRY_USER" --password-stdin --insecure; rc=$?; echo "-- exit $rc"; [[ $rc == 0 ]] || fails=$((fails+1))
# 4.
run regkeep registry list
run regkeep --json registry get "$R"
run regkeep registry update "$R" --registry-name lab
n=$((n+1)); echo "== [$n] printf ... | regkeep registry update $R --password-stdin"
printf '%s\n' "$REGKEEP_TEST_REGISTRY_PASS" | regkeep registry update "$R" --password-stdin; rc=$?; echo "-- exit $rc"; [[ $rc == 0 ]] || fails=$((fails+1))
# 5.
run regkeep account add team-a --email ops@example.com
n=$((n+1)); echo "== [$n] printf 'a-long-password' | regkeep user add alice --account team-a --password-stdin"
printf 'a-long-password\n' | regkeep user add alice --account team-a --password-stdin; rc=$?; echo "-- exit $rc"; [[ $rc == 0 ]] || fails=$((fails+1))
run regkeep --as-account team-a registry list
# 6.
run regkeep image add "$R/test/hello:v1"
run regkeep image pull "$R/test/hello:v1" --output /tmp/app-layout
run skopeo copy oci:/tmp/app-layout:v1 docker-archive:/tmp/app.tar
run regkeep subscription add "$R/test/hello:v1"
run regkeep subscription list
id=$(regkeep --json subscription list | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["subscription_id"])')
run regkeep subscription poll "$id"
run regkeep event list
ANCHORE_CLI_URL=http://127.0.0.1:8228/v1 ANCHORE_CLI_USER=admin ANCHORE_CLI_PASS="$REGKEEP_PASS" run "$REGKEEP_TEST_ANCHORE_CLI" registry list
# The rest of the README's first section.
run regkeep completions bash
run regkeep --version
echo "== server log (first 5 lines):"; head -5 /tmp/regkeep.log
kill $srv; wait $srv 2>/dev/null
echo "== $n commands, $fails failed"
((fails == 0))
