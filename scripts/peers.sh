#!/usr/bin/env bash
# Starts and stops the real peers regkeep's tests talk to, all on loopback (recipes: shared TEST-PEERS.md).
#
#   scripts/peers.sh start   fresh peers (stops this script's earlier ones first), writes target/peers/env
#   scripts/peers.sh stop    stops what start started, by PID file; PostgreSQL only if start started it
#   scripts/peers.sh env     prints the path of the env file (`source "$(scripts/peers.sh env)"`)
#
# Peers (fixed ports; start fails, naming the holder, when one is taken):
#   127.0.0.1:15000  docker-registry, htpasswd (Basic) auth, plain HTTP
#   127.0.0.1:15001  docker-registry, htpasswd auth, TLS with a server cert from a private CA (ca.pem)
#   127.0.0.1:15002  docker-registry, Bearer token auth, plain HTTP, realm http://127.0.0.1:15003/token
#   127.0.0.1:15003  fixtures/token_server.py, the token server of 15002 (same user and password)
#   127.0.0.1:15004  docker-registry, no auth, plain HTTP
#   127.0.0.1:5432   PostgreSQL 15 cluster "main", role regkeep/regkeep with CREATEDB
# Each registry holds test/hello:v1 (a one-layer OCI image, built by seed_images below).
#
# The env file ($REPO/target/peers/env, mode 0600) exports:
#   REGKEEP_TEST_REGISTRY_HTTP|_TLS|_BEARER|_ANON   host:port of each registry
#   REGKEEP_TEST_REGISTRY_USER, REGKEEP_TEST_REGISTRY_PASS   credentials of the three with auth (the password
#                                                 is new on every start)
#   REGKEEP_TEST_CA                    the CA that signed the TLS registry's cert
#   REGKEEP_TEST_TOKEN_REALM           the token server's URL
#   REGKEEP_TEST_IMAGE, REGKEEP_TEST_IMAGE_DIGEST   the seeded image (repo:tag) and its manifest digest
#   REGKEEP_TEST_POSTGRES_URL          postgres://regkeep:regkeep@127.0.0.1:5432/postgres
#   REGKEEP_TEST_ANCHORE_CLI, REGKEEP_TEST_SKOPEO, REGKEEP_TEST_PYTHON (venv-peers), REGKEEP_TEST_PEERS_DIR
#
# Needs scripts/install-deps.sh to have run, and root (for PostgreSQL). Every wait is bounded.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$REPO/target/peers
ENV_FILE=$PEERS/env
PEERS_PY=$REPO/.cache/venv-peers/bin/python
ANCHORE_CLI=$REPO/.cache/venv-anchore/bin/anchore-cli

REG_USER=regkeep-test
HTTP_PORT=15000 TLS_PORT=15001 BEARER_PORT=15002 TOKEN_PORT=15003 ANON_PORT=15004
TOKEN_REALM=http://127.0.0.1:$TOKEN_PORT/token TOKEN_SERVICE=test-registry TOKEN_ISSUER=test-issuer
PG_VERSION=15 PG_CLUSTER=main PG_PORT=5432
PG_URL=postgres://regkeep:regkeep@127.0.0.1:$PG_PORT/postgres
PG_MARKER=$PEERS/postgres-started-by-peers   # present while PostgreSQL runs because start started it
IMAGE=test/hello:v1
WAIT_SECS=20

say() { printf 'peers: %s\n' "$*"; }
die() { printf 'peers: error: %s\n' "$*" >&2; exit 1; }

# --- processes --------------------------------------------------------------------------------

# alive PID: running (a zombie waiting for its reaper counts as gone).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# ours PID: the process's command line names a file under $PEERS, so a PID file left behind after a
# reboot never makes us kill a stranger that got the same PID.
ours() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$PEERS/"; }

# spawn NAME CMD...: runs CMD detached (own session, stdin closed, output to NAME/NAME.log) and
# records its PID in NAME/pid. The subshell execs setsid, which (not being a group leader) execs CMD
# in place, so $! is CMD's own PID.
spawn() {
    local name=$1; shift
    (cd "$PEERS/$name" && exec setsid "$@" </dev/null >>"$PEERS/$name/$name.log" 2>&1) &
    echo $! >"$PEERS/$name/pid"
}

# kill_pidfile FILE: TERM, then KILL after 10 s, the process FILE names if it is ours.
kill_pidfile() {
    local file=$1 pid
    pid=$(<"$file") || return 0
    if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        say "stopped $(basename "$(dirname "$file")") (pid $pid)"
    fi
    rm -f "$file"
}

stop_processes() {
    local f
    for f in "$PEERS"/*/pid; do
        [[ -e $f ]] && kill_pidfile "$f"
    done
    return 0
}

# --- ports and waiting ------------------------------------------------------------------------

port_taken() { [[ -n $(ss -Hltn "sport = :$1") ]]; }

require_free_port() { # PORT WHAT
    port_taken "$1" || return 0
    die "port $1 (for $2) is already in use: $(ss -Hltnp "sport = :$1" | awk '{print $4, $6}' | head -n 3 | tr '\n' ' ')
       stop that process (or, if it is a leftover of this script, run scripts/peers.sh stop)"
}

# wait_http NAME EXPECTED_STATUS URL [CURL_ARGS...]: polls until URL answers EXPECTED_STATUS.
wait_http() {
    local name=$1 want=$2 url=$3 got=000 deadline=$((SECONDS + WAIT_SECS))
    shift 3
    while ((SECONDS < deadline)); do
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
        [[ $got == "$want" ]] && return 0
        if ! alive "$(<"$PEERS/$name/pid")"; then
            tail -n 20 "$PEERS/$name/$name.log" >&2 || true
            die "$name exited during start-up (log: $PEERS/$name/$name.log)"
        fi
        sleep 0.1
    done
    tail -n 20 "$PEERS/$name/$name.log" >&2 || true
    die "$name: $url answered $got, not $want, within ${WAIT_SECS}s (log: $PEERS/$name/$name.log)"
}

# --- certificates and credentials -------------------------------------------------------------

make_certs() {
    local d=$PEERS
    # A private CA, proper for rustls/webpki: v3, CA:TRUE, keyCertSign.
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=regkeep test CA' \
        -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
        -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
    # The TLS registry's cert, for the names tests dial: an end-entity cert (CA:FALSE, serverAuth).
    openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout "$d/server-key.pem" -out "$d/server.csr" 2>/dev/null
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -days 30 \
        -set_serial "0x$(openssl rand -hex 8)" -out "$d/server.pem" -extfile <(printf '%s\n' \
            'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=critical,CA:FALSE' \
            'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
            'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid') 2>/dev/null
    rm -f "$d/server.csr"
    # The token signer: self-signed, and it is its own trust anchor (the bearer registry's rootcertbundle).
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=regkeep test token signer' \
        -keyout "$d/token-key.pem" -out "$d/token.pem" 2>/dev/null
    chmod 600 "$d"/*-key.pem
    # skopeo's --cert-dir layout: DIR/ca.crt.
    mkdir -p "$d/certs.d" && cp "$d/ca.pem" "$d/certs.d/ca.crt"
}

# make_credentials PASS: the bcrypt htpasswd file, and a containers auth file for skopeo, so the
# password never appears on a command line.
make_credentials() {
    local pass=$1 auth
    htpasswd -niB "$REG_USER" <<<"$pass" >"$PEERS/htpasswd" 2>/dev/null
    auth=$(printf '%s:%s' "$REG_USER" "$pass" | base64 -w0)
    jq -n --arg a "$auth" '{auths: {
        "127.0.0.1:'$HTTP_PORT'": {auth: $a}, "127.0.0.1:'$TLS_PORT'": {auth: $a},
        "127.0.0.1:'$BEARER_PORT'": {auth: $a}}}' >"$PEERS/auth.json"
    chmod 600 "$PEERS/htpasswd" "$PEERS/auth.json"
}

# --- registries -------------------------------------------------------------------------------

# start_registry NAME PORT AUTH_YAML [TLS_YAML]
start_registry() {
    local name=registry-$1 port=$2 auth=$3 tls=${4:-} dir
    dir=$PEERS/registry-$1
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: "$dir/data"}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
  secret: $(openssl rand -hex 16)
$tls
$auth
EOF
    spawn "$name" docker-registry serve "$dir/config.yml"
}

start_registries() {
    local htpasswd="auth: {htpasswd: {realm: basic-realm, path: \"$PEERS/htpasswd\"}}"
    start_registry http "$HTTP_PORT" "$htpasswd"
    start_registry tls "$TLS_PORT" "$htpasswd" \
        "  tls: {certificate: \"$PEERS/server.pem\", key: \"$PEERS/server-key.pem\"}"
    start_registry bearer "$BEARER_PORT" "auth: {token: {realm: \"$TOKEN_REALM\", service: $TOKEN_SERVICE, issuer: $TOKEN_ISSUER, rootcertbundle: \"$PEERS/token.pem\"}}"
    start_registry anon "$ANON_PORT" ""
}

start_token_server() { # PASS
    mkdir -p "$PEERS/token-server"
    # Credentials through the environment, not argv (visible in ps).
    TOKEN_USER=$REG_USER TOKEN_PASS=$1 spawn token-server "$PEERS_PY" "$REPO/fixtures/token_server.py" \
        --listen "127.0.0.1:$TOKEN_PORT" --key "$PEERS/token-key.pem" --cert "$PEERS/token.pem" \
        --issuer "$TOKEN_ISSUER" --service "$TOKEN_SERVICE"
}

wait_registries() {
    wait_http registry-http 401 "http://127.0.0.1:$HTTP_PORT/v2/"
    wait_http registry-tls 401 "https://127.0.0.1:$TLS_PORT/v2/" --cacert "$PEERS/ca.pem"
    wait_http registry-bearer 401 "http://127.0.0.1:$BEARER_PORT/v2/"
    wait_http registry-anon 200 "http://127.0.0.1:$ANON_PORT/v2/"
    wait_http token-server 401 "$TOKEN_REALM?service=$TOKEN_SERVICE"
}

# --- PostgreSQL -------------------------------------------------------------------------------

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

start_postgres() {
    if pg_ready; then
        if [[ -e $PG_MARKER ]]; then say "postgres: already running (started by peers.sh)"
        else say "postgres: already running (not ours: left alone at stop)"; fi
    else
        [[ $(id -u) == 0 ]] || die "starting PostgreSQL needs root (pg_ctlcluster, runuser)"
        if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {f=1} END {exit !f}'; then
            say "postgres: creating cluster $PG_VERSION/$PG_CLUSTER"
            timeout 120 pg_createcluster -p "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" >/dev/null
        fi
        require_free_port "$PG_PORT" "PostgreSQL"
        timeout 60 pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start </dev/null \
            || die "pg_ctlcluster $PG_VERSION $PG_CLUSTER start failed (log: /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
        touch "$PG_MARKER"
        local deadline=$((SECONDS + WAIT_SECS))
        until pg_ready; do
            ((SECONDS < deadline)) || die "PostgreSQL did not accept connections on 127.0.0.1:$PG_PORT within ${WAIT_SECS}s"
            sleep 0.2
        done
        say "postgres: started cluster $PG_VERSION/$PG_CLUSTER"
    fi
    # The role, idempotently (ALTER keeps password and CREATEDB right if someone changed them).
    (cd / && timeout 30 runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres) >/dev/null <<'SQL' \
        || die "could not create the PostgreSQL role regkeep"
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'regkeep') THEN
    ALTER ROLE regkeep LOGIN CREATEDB PASSWORD 'regkeep';
  ELSE
    CREATE ROLE regkeep LOGIN CREATEDB PASSWORD 'regkeep';
  END IF;
END $$;
SQL
    timeout 10 psql -X -q -d "$PG_URL" -c 'SELECT 1' >/dev/null \
        || die "role regkeep cannot log in with $PG_URL (check pg_hba.conf for 127.0.0.1/32)"
}

stop_postgres() {
    [[ -e $PG_MARKER ]] || return 0
    timeout 60 pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast </dev/null || say "postgres: stop failed"
    rm -f "$PG_MARKER"
    say "stopped postgres"
}

# --- test content -----------------------------------------------------------------------------

# blob FILE: moves FILE into the layout's blob store; prints "sha256:<hex> <size>".
blob() {
    local hex size
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$LAYOUT/blobs/sha256/$hex"
    echo "sha256:$hex $size"
}

# build_layout: a deterministic one-layer OCI image layout at $LAYOUT, tag v1 (same digests on every
# run and machine: fixed content, mode, owner and mtime, gzip without name or time).
build_layout() {
    local work=$PEERS/oci/work diff_id layer_digest layer_size config_digest config_size manifest_size
    rm -rf "$LAYOUT" "$work"
    mkdir -p "$LAYOUT/blobs/sha256" "$work/rootfs"
    printf 'hello from the regkeep test image\n' >"$work/rootfs/hello.txt"
    chmod 0644 "$work/rootfs/hello.txt"
    tar --sort=name --mtime='2020-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
        -C "$work/rootfs" -cf "$work/layer.tar" hello.txt
    diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
    read -r layer_digest layer_size < <(blob "$work/layer.tar.gz")
    printf '%s' '{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' >"$work/config.json"
    read -r config_digest config_size < <(blob "$work/config.json")
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"'"$layer_digest"'","size":'"$layer_size"'}]}' >"$work/manifest.json"
    read -r MANIFEST_DIGEST manifest_size < <(blob "$work/manifest.json")
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
    printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'"$MANIFEST_DIGEST"'","size":'"$manifest_size"',"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' >"$LAYOUT/index.json"
    rm -rf "$work"
}

# seed_images: pushes test/hello:v1 into every registry with skopeo (creds from auth.json, the CA via
# a cert dir, plain HTTP via --dest-tls-verify=false). The OCI manifest goes in unchanged, so its
# digest in each registry is $MANIFEST_DIGEST.
seed_images() {
    LAYOUT=$PEERS/oci/hello
    build_layout
    local target port tls auth args
    for target in "$HTTP_PORT:plain:creds" "$TLS_PORT:ca:creds" "$BEARER_PORT:plain:creds" "$ANON_PORT:plain:none"; do
        IFS=: read -r port tls auth <<<"$target"
        if [[ $tls == plain ]]; then args=(--dest-tls-verify=false); else args=(--dest-cert-dir "$PEERS/certs.d"); fi
        if [[ $auth == creds ]]; then args+=(--dest-authfile "$PEERS/auth.json"); else args+=(--dest-no-creds); fi
        timeout 60 skopeo --insecure-policy copy -q "${args[@]}" \
            "oci:$LAYOUT:v1" "docker://127.0.0.1:$port/$IMAGE" </dev/null >"$PEERS/oci/seed-$port.log" 2>&1 \
            || { cat "$PEERS/oci/seed-$port.log" >&2; die "seeding $IMAGE into 127.0.0.1:$port failed"; }
    done
}

# --- env file ---------------------------------------------------------------------------------

write_env() { # PASS
    local tmp=$ENV_FILE.tmp
    (
        umask 077
        {
            printf '# Written by scripts/peers.sh start; removed by stop.\n'
            printf 'export %s=%q\n' \
                REGKEEP_TEST_REGISTRY_HTTP "127.0.0.1:$HTTP_PORT" \
                REGKEEP_TEST_REGISTRY_TLS "127.0.0.1:$TLS_PORT" \
                REGKEEP_TEST_REGISTRY_BEARER "127.0.0.1:$BEARER_PORT" \
                REGKEEP_TEST_REGISTRY_ANON "127.0.0.1:$ANON_PORT" \
                REGKEEP_TEST_REGISTRY_USER "$REG_USER" \
                REGKEEP_TEST_REGISTRY_PASS "$1" \
                REGKEEP_TEST_CA "$PEERS/ca.pem" \
                REGKEEP_TEST_TOKEN_REALM "$TOKEN_REALM" \
                REGKEEP_TEST_IMAGE "$IMAGE" \
                REGKEEP_TEST_IMAGE_DIGEST "$MANIFEST_DIGEST" \
                REGKEEP_TEST_POSTGRES_URL "$PG_URL" \
                REGKEEP_TEST_ANCHORE_CLI "$ANCHORE_CLI" \
                REGKEEP_TEST_SKOPEO "$(command -v skopeo)" \
                REGKEEP_TEST_PEERS_DIR "$PEERS" \
                REGKEEP_TEST_PYTHON "$PEERS_PY"
        } >"$tmp"
    )
    mv "$tmp" "$ENV_FILE"
}

# --- commands ---------------------------------------------------------------------------------

cmd_start() {
    local t0=$SECONDS pass f port
    for f in docker-registry htpasswd skopeo pg_ctlcluster openssl curl jq ss "$PEERS_PY" "$ANCHORE_CLI"; do
        command -v "$f" >/dev/null || die "$f not found: run scripts/install-deps.sh first"
    done
    mkdir -p "$PEERS"
    stop_processes
    rm -f "$ENV_FILE"
    for port in "$HTTP_PORT:registry http" "$TLS_PORT:registry tls" "$BEARER_PORT:registry bearer" \
        "$TOKEN_PORT:token server" "$ANON_PORT:registry anon"; do
        require_free_port "${port%%:*}" "${port#*:}"
    done
    # A start that fails half-way leaves nothing running.
    trap 'rc=$?; if ((rc)); then say "start failed: stopping what was started"; cmd_stop >&2; fi' EXIT

    rm -rf "$PEERS"/registry-* "$PEERS/token-server" "$PEERS/oci"
    make_certs
    pass=$(openssl rand -hex 16)
    make_credentials "$pass"
    start_registries
    start_token_server "$pass"
    start_postgres
    wait_registries
    seed_images
    write_env "$pass"
    trap - EXIT
    say "all peers up in $((SECONDS - t0))s; env: $ENV_FILE"
}

cmd_stop() {
    [[ -d $PEERS ]] || return 0
    stop_processes
    stop_postgres
    rm -f "$ENV_FILE"
}

cmd_env() {
    echo "$ENV_FILE"
    [[ -f $ENV_FILE ]] || { printf 'peers: %s does not exist: run scripts/peers.sh start\n' "$ENV_FILE" >&2; return 1; }
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*) printf 'usage: %s start|stop|env\n' "$0" >&2; exit 2 ;;
esac
