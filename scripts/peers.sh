#!/usr/bin/env bash
# Starts and stops the real peers regkeep's tests talk to, all on loopback (recipes: shared TEST-PEERS.md).
#
#   scripts/peers.sh start   fresh peers (stops this script's earlier ones first), writes target/peers/env,
#                            then proves the AWS peers behave (fixtures/check_aws.py and a few curls)
#   scripts/peers.sh stop    stops what start started: processes by PID file, PostgreSQL with pg_ctl
#   scripts/peers.sh env     prints the path of the env file (`source "$(scripts/peers.sh env)"`)
#
# Two modes, chosen by what 123456789012.dkr.ecr.us-east-1.amazonaws.com resolves to:
#   - inside the test namespace (scripts/test.sh, scripts/test-shell.sh: `unshare --net --mount`, only
#     loopback, a private /etc/hosts mapping that name to 127.0.0.2): every peer below, including the
#     registry under the real ECR host name and the adversarial lab;
#   - anywhere else (a developer's shell on the host): the same minus that registry and the lab, and
#     REGKEEP_TEST_REGISTRY_ECR and REGKEEP_TEST_LAB* are not exported (tests needing them must skip).
#     The fixed ports below must then be free on the host's loopback (5432 too: stop a system
#     PostgreSQL first).
# For a shell inside the namespace with everything up: scripts/test-shell.sh.
#
# Peers (fixed ports; start fails, naming the holder, when one is taken):
#   127.0.0.1:15000  docker-registry, htpasswd (Basic) auth, plain HTTP
#   127.0.0.1:15001  docker-registry, htpasswd auth, TLS with a server cert from a private CA (ca.pem)
#   127.0.0.1:15002  docker-registry, Bearer token auth, plain HTTP, realm http://127.0.0.1:15003/token
#   127.0.0.1:15003  fixtures/token_server.py, the token server of 15002 (same user and password)
#   127.0.0.1:15004  docker-registry, no auth, plain HTTP
#   127.0.0.1:15005  fixtures/redirect_registry.py, a redirecting registry front: HTTP Basic (same user and
#                    password; else 401 Basic realm="regkeep-redirect"), GET|HEAD /v2/ and manifests
#                    proxied to 15000, blob GETs answered 307 to the blob host below
#   127.0.0.3:15006  its blob host (another address, so a foreign host to clients): /blobs/<name>/<digest>
#                    fetched from 15000 with the fixture's own credentials; counts its requests and those
#                    that carried an Authorization header: GET /_seen {"requests","with_authorization"},
#                    POST /_reset (both are zero when start returns)
#   127.0.0.1:15010  moto server (AWS: IAM, STS, ECR), signature and IAM-policy checking ON after seeding
#                    by fixtures/seed_aws.py (users regkeep-test, regkeep-noperm; role regkeep-pull)
#   127.0.0.1:15011  fixtures/imds.py, IMDSv2 (role regkeep-role: AssumeRole credentials minted from moto)
#   127.0.0.1:15012  fixtures/ecr_api.py, a fake ECR GetAuthorizationToken with a control API (lifetime,
#                    failures, token, delay; /_calls, /_reset)
#   127.0.0.2:443    docker-registry as 123456789012.dkr.ecr.us-east-1.amazonaws.com, TLS (cert from
#                    ca.pem), htpasswd user AWS password 123456789012-auth-token: namespace mode only.
#                    Also as the other ECR host forms of NS_ECR_MORE_HOSTS (scripts/ns-lib.sh: GovCloud,
#                    China, FIPS, dual-stack, public.ecr.aws), the same registry under each name.
#   127.0.0.4:443    fixtures/aws_front.py, the TLS front for AWS's real API names (NS_AWS_API_HOSTS:
#                    api.ecr.<region>.amazonaws.com[.cn], ecr.<region>.api.aws, sts.*, ...; cert from
#                    ca.pem): logs the SNI and Host each request asked for (REGKEEP_TEST_AWS_FRONT_LOG)
#                    and forwards it, Host kept, to moto, or for api.ecr-public.* to the ECR-API fixture;
#                    signs the unsigned AssumeRoleWithWebIdentity calls moto cannot take (its docstring).
#                    Namespace mode only.
#   127.0.0.1:15013  fixtures/container_credentials.py, an EKS Pod Identity agent / ECS credentials
#                    endpoint: GET /v1/credentials with the Authorization token of
#                    REGKEEP_TEST_CONTAINER_TOKEN_FILE (moto AssumeRole credentials). Namespace mode only.
#   127.0.0.1:5432   a private PostgreSQL 15 (initdb into target/peers/postgres, socket there too, never
#                    /var/run/postgresql), role regkeep/regkeep with CREATEDB
# The adversarial test lab (namespace mode only; scripts/in-namespace.sh put its addresses on lo, the
# *.evil.test names in the private /etc/hosts and nameserver 127.0.0.53 in a private /etc/resolv.conf).
# Stand-ins for places a client must never be sent to; each request log (JSON lines, empty when start
# returns) is in REGKEEP_TEST_LAB_DIR, may be truncated by tests and goes on filling afterwards:
#   169.254.169.254:80  fixtures/lab_standin.py, the cloud metadata service      log metadata.log
#   127.0.0.9:80        fixtures/lab_standin.py, a loopback-only internal service  log loopback.log
#   10.77.0.1:80        fixtures/lab_standin.py, a private-network service        log private.log
#                       Any method and path: logged as {"method","path","host","authorization"}, then
#                       200 {"Code":"Success","AccessKeyId":S,"SecretAccessKey":S,"Token":S,"token":S,
#                       "access_token":S,"expires_in":300}, S being that stand-in's secret (new on every
#                       start): finding S anywhere proves a client went there and used the answer.
#   127.0.0.53:53       fixtures/lab_dns.py, UDP and TCP, TTL 0 (log dns.log: {"name","type","rcode",
#                       "answer"}): A for rebind.evil.test alternates 198.51.100.7, 169.254.169.254, ...
#                       (first 198.51.100.7); rebind-loop.evil.test 198.51.100.7, 127.0.0.9;
#                       rebind-target.evil.test 198.51.100.7, 169.254.169.254. One counter per name,
#                       advanced by A queries only (one getaddrinfo is one step, even AF_UNSPEC: glibc's
#                       parallel AAAA does not count); AAAA: NOERROR, empty. A lookup of reset.<name>
#                       (e.g. getent ahostsv4 reset.rebind.evil.test) restarts <name> at 198.51.100.7;
#                       all three start there when start returns. Anything else: NXDOMAIN.
#   198.51.100.7:80/443 fixtures/evil_registry.py, a malicious Registry v2, plain HTTP and TLS (cert from
#                       ca.pem for evil.test, *.evil.test, IP 198.51.100.7); log evil.log (the requests
#                       with their Authorization, plus "scheme"). Its behaviour follows the Host name
#                       (details in the fixture's docstring):
#       plain.evil.test, evil.test, rebind*.evil.test, the bare IP, any other name: anonymous, /v2/ 200;
#           any repository's manifest (tag or its digest) is one OCI manifest, REGKEEP_TEST_LAB_MANIFEST_DIGEST,
#           naming a small config (..._CONFIG_DIGEST) and one small layer (..._LAYER_DIGEST), all served;
#           GET /token (any personality but escapes) {"token":"evil-token-ok",...}
#       realm-{meta,loop,private,decimal,mapped,https,http}.evil.test: everything but /token without
#           `Authorization: Bearer evil-token-ok` is 401 WWW-Authenticate: Bearer realm="R",service="evil"
#           (,scope=... on repository paths), R: meta http://169.254.169.254/latest/meta-data/iam/security-credentials/lab-role,
#           loop http://127.0.0.9/token, private http://10.77.0.1/token, decimal http://2130706441/token,
#           mapped http://[::ffff:169.254.169.254]/token, https https://realm-https.evil.test/token (itself:
#           a fair realm; the token then opens the content), http http://evil.test/token (plain HTTP)
#       redirect-{meta,loop,private,mapped,mapped-hex,decimal,octal,hex,rebind}.evil.test: /v2/ 200;
#           manifest and blob GET|HEAD: 307 to the metadata credentials URL, http://127.0.0.9/x,
#           http://10.77.0.1/x, http://[::ffff:169.254.169.254]/x, http://[::ffff:a9fe:a9fe]/x,
#           http://2130706441/x, http://0177.0.0.9/x, http://0xa9fea9fe/x, and for rebind
#           http://rebind-target.evil.test<same path> (served by this registry, as plain, when the lab
#           DNS answers 198.51.100.7; the metadata stand-in when it answers 169.254.169.254)
#       escapes.evil.test: /v2/ 401 Basic realm="evil" whatever the credentials, JSON error message full
#           of terminal escapes (OSC title, clear screen, CR LF, a forged line, C1 CSI); other /v2/ paths
#           500 and /token 401, text/plain with raw ESC, C1 (U+0085, U+009B) and CR bytes
#       big.evil.test: repository big/<N> (N an integer): the manifest names a config blob of exactly
#           8 MiB (valid JSON, distinct per N), streamed; other repositories as plain
# Content (built deterministically and pushed by seed_images below; 15005 shows what 15000 holds):
#   test/hello:v1        every registry: a one-layer linux/amd64 OCI image (OCI manifest)
#   test/multi:v1        15000, 15001, 15002, 15004: an OCI image index of two one-layer OCI images,
#                        linux/amd64 and linux/arm64 variant v8 (own config and layer each)
#   test/hello-v2s2:v1   15000, 15001, 15002, 15004: test/hello as a Docker schema 2 manifest (skopeo
#                        --format v2s2; same digest in all four, checked)
#
# The env file ($REPO/target/peers/env, mode 0600) exports:
#   REGKEEP_TEST_REGISTRY_HTTP|_TLS|_BEARER|_ANON   host:port of each registry
#   REGKEEP_TEST_REGISTRY_REDIRECT     127.0.0.1:15005, the redirecting registry (same user and password)
#   REGKEEP_TEST_REDIRECT_SEEN_URL     http://127.0.0.3:15006/_seen (POST .../_reset zeroes it)
#   REGKEEP_TEST_REGISTRY_USER, REGKEEP_TEST_REGISTRY_PASS   credentials of the three with auth and of the
#                                                 redirecting one (the password is new on every start)
#   REGKEEP_TEST_REGISTRY_ECR          123456789012.dkr.ecr.us-east-1.amazonaws.com (namespace mode only;
#                                      port 443, CA REGKEEP_TEST_CA, user AWS)
#   REGKEEP_TEST_CA                    the CA that signed the TLS registries' certs
#   REGKEEP_TEST_TOKEN_REALM           the token server's URL
#   REGKEEP_TEST_IMAGE, REGKEEP_TEST_IMAGE_DIGEST   test/hello:v1 and its manifest digest
#   REGKEEP_TEST_MULTI_IMAGE, REGKEEP_TEST_MULTI_DIGEST   test/multi:v1 and its index's digest
#   REGKEEP_TEST_MULTI_AMD64_DIGEST, REGKEEP_TEST_MULTI_ARM64_DIGEST   its linux/amd64 and linux/arm64/v8
#                                      manifests' digests
#   REGKEEP_TEST_V2S2_IMAGE, REGKEEP_TEST_V2S2_DIGEST   test/hello-v2s2:v1 and its manifest's digest (as
#                                      read back from the registries)
#   REGKEEP_TEST_POSTGRES_URL          postgres://regkeep:regkeep@127.0.0.1:5432/postgres
#   REGKEEP_TEST_REQUIRE_PEERS         1: a peer test whose environment is missing fails (without this file,
#                                      under plain `cargo test`, the peer tests are skipped with a notice)
#   REGKEEP_TEST_MOTO_URL              http://127.0.0.1:15010
#   REGKEEP_TEST_AWS_ACCESS_KEY_ID, REGKEEP_TEST_AWS_SECRET_ACCESS_KEY   user regkeep-test (ecr:*, sts:AssumeRole)
#   REGKEEP_TEST_AWS_NOPERM_ACCESS_KEY_ID, REGKEEP_TEST_AWS_NOPERM_SECRET_ACCESS_KEY   user regkeep-noperm
#                                      (no policy: AccessDenied)
#   REGKEEP_TEST_AWS_ROLE_ARN          role regkeep-pull (ecr:*; anyone may assume it)
#   REGKEEP_TEST_AWS_ACCOUNT, REGKEEP_TEST_AWS_REGION   123456789012, us-east-1
#   REGKEEP_TEST_IMDS_URL              http://127.0.0.1:15011 (AWS_EC2_METADATA_SERVICE_ENDPOINT)
#   REGKEEP_TEST_ECR_FIXTURE_URL       http://127.0.0.1:15012
#   REGKEEP_TEST_ANCHORE_CLI, REGKEEP_TEST_SKOPEO, REGKEEP_TEST_PYTHON (venv-peers), REGKEEP_TEST_PEERS_DIR
# and in namespace mode only, the adversarial lab (tests needing it skip when REGKEEP_TEST_LAB is unset):
#   REGKEEP_TEST_LAB                   1
#   REGKEEP_TEST_LAB_DIR               the folder of metadata.log, loopback.log, private.log, dns.log,
#                                      evil.log and evil.json (the three digests below)
#   REGKEEP_TEST_LAB_METADATA_SECRET, REGKEEP_TEST_LAB_LOOPBACK_SECRET, REGKEEP_TEST_LAB_PRIVATE_SECRET
#                                      what each stand-in puts in every credential field of its answer
#   REGKEEP_TEST_LAB_MANIFEST_DIGEST, REGKEEP_TEST_LAB_CONFIG_DIGEST, REGKEEP_TEST_LAB_LAYER_DIGEST
#                                      the malicious registry's content (any repository, big/<N> aside)
# and, also namespace mode only, AWS under its real names (for tests/peers/ecr_endpoints.rs, which
# runs only in the namespace):
#   REGKEEP_TEST_AWS_FRONT_LOG         the front's JSON-lines request log (empty when start returns)
#   REGKEEP_TEST_AWS_GOV_ACCESS_KEY_ID, REGKEEP_TEST_AWS_GOV_SECRET_ACCESS_KEY   user regkeep-test of
#                                      moto's aws-us-gov partition (ecr:*)
#   REGKEEP_TEST_AWS_GOV_ROLE_ARN      role regkeep-pull of aws-us-gov (web identity there)
#   REGKEEP_TEST_AWS_CN_ACCESS_KEY_ID, REGKEEP_TEST_AWS_CN_SECRET_ACCESS_KEY     the same in aws-cn
#   REGKEEP_TEST_CONTAINER_CREDENTIALS_URL  http://127.0.0.1:15013/v1/credentials
#   REGKEEP_TEST_CONTAINER_TOKEN_FILE  the token that endpoint wants in Authorization (0600)
# AWS secrets only ever travel through files (0600), environment variables and stdin, never argv.
#
# Needs scripts/install-deps.sh to have run, and root (PostgreSQL, port 443). Every wait is bounded;
# start and stop take a lock (flock on target/peers.lock), so two of them never interleave.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# NS_ECR_MORE_HOSTS, NS_AWS_FRONT_ADDR, NS_AWS_API_HOSTS: the names in-namespace.sh put in /etc/hosts.
# shellcheck source=scripts/ns-lib.sh
source "$REPO/scripts/ns-lib.sh"
PEERS=$REPO/target/peers
ENV_FILE=$PEERS/env
PEERS_VENV=$REPO/.cache/venv-peers
PEERS_PY=$PEERS_VENV/bin/python
ANCHORE_CLI=$REPO/.cache/venv-anchore/bin/anchore-cli
LOCK_FILE=$REPO/target/peers.lock

REG_USER=regkeep-test
HTTP_PORT=15000 TLS_PORT=15001 BEARER_PORT=15002 TOKEN_PORT=15003 ANON_PORT=15004
# The redirecting registry: its front, and the blob host its blob GETs redirect to (another address).
REDIRECT_PORT=15005 BLOB_HOST_ADDR=127.0.0.3 BLOB_HOST_PORT=15006
REDIRECT_SEEN_URL=http://$BLOB_HOST_ADDR:$BLOB_HOST_PORT/_seen
TOKEN_REALM=http://127.0.0.1:$TOKEN_PORT/token TOKEN_SERVICE=test-registry TOKEN_ISSUER=test-issuer
PG_BIN=/usr/lib/postgresql/15/bin PG_PORT=5432
PG_URL=postgres://regkeep:regkeep@127.0.0.1:$PG_PORT/postgres
PG_DIR_FILE=$PEERS/postgres.dir   # the private instance's directory (data dir, socket, log) while it exists
MOTO_PORT=15010 IMDS_PORT=15011 ECR_API_PORT=15012 CONTAINER_CREDS_PORT=15013
CONTAINER_CREDS_URL=http://127.0.0.1:$CONTAINER_CREDS_PORT/v1/credentials
AWS_FRONT_ADDR=$NS_AWS_FRONT_ADDR AWS_FRONT_PORT=443 AWS_FRONT_LOG=$PEERS/aws-front/requests.log
MOTO_URL=http://127.0.0.1:$MOTO_PORT IMDS_URL=http://127.0.0.1:$IMDS_PORT ECR_API_URL=http://127.0.0.1:$ECR_API_PORT
AWS_ACCOUNT=123456789012 AWS_REGION=us-east-1
SEED_FILE=$PEERS/aws/seed.json    # moto's users and keys (secrets: 0600)
# The registry under the real ECR host name (namespace mode): the password is what moto and
# fixtures/ecr_api.py put in their tokens by default.
ECR_HOST=$AWS_ACCOUNT.dkr.ecr.$AWS_REGION.amazonaws.com ECR_ADDR=127.0.0.2 ECR_PORT=443
ECR_USER=AWS ECR_PASS=$AWS_ACCOUNT-auth-token
IMAGE=test/hello:v1 MULTI_IMAGE=test/multi:v1 V2S2_IMAGE=test/hello-v2s2:v1
# The adversarial lab (namespace mode only): request logs, secrets and digests in $LAB; its processes in
# $PEERS/lab-<kind> (pid, output) like every peer.
LAB=$PEERS/lab
LAB_METADATA_ADDR=169.254.169.254 LAB_LOOPBACK_ADDR=127.0.0.9 LAB_PRIVATE_ADDR=10.77.0.1
LAB_EVIL_ADDR=198.51.100.7 LAB_DNS_ADDR=127.0.0.53
declare -A LAB_STANDINS=([metadata]=$LAB_METADATA_ADDR [loopback]=$LAB_LOOPBACK_ADDR [private]=$LAB_PRIVATE_ADDR)
# The lab DNS's alternating names: the addresses its A answers cycle through, first one first.
declare -A LAB_REBIND=([rebind.evil.test]="$LAB_EVIL_ADDR $LAB_METADATA_ADDR"
    [rebind-loop.evil.test]="$LAB_EVIL_ADDR $LAB_LOOPBACK_ADDR" [rebind-target.evil.test]="$LAB_EVIL_ADDR $LAB_METADATA_ADDR")
LAB_META_URL=http://$LAB_METADATA_ADDR/latest/meta-data/iam/security-credentials/lab-role
WAIT_SECS=20

say() { printf 'peers: %s\n' "$*"; }
die() { printf 'peers: error: %s\n' "$*" >&2; exit 1; }

# start and stop run under an exclusive lock on fd 8, held until this script exits (its EXIT trap
# included). The daemons started below must not inherit fd 8, or they would hold the lock for good:
# spawn and as_postgres close it.
if [[ ${1:-} == start || ${1:-} == stop ]]; then
    mkdir -p "$REPO/target"
    exec 8>"$LOCK_FILE"
    timeout 300 flock 8 || die "another scripts/peers.sh start|stop still holds $LOCK_FILE after 5 min"
fi

# --- processes --------------------------------------------------------------------------------

# alive PID: running (a zombie waiting for its reaper counts as gone).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# ours PID: the process's command line names a file under $PEERS, or its environment holds
# REGKEEP_PEERS_OWNER=$PEERS (set by spawn), so a PID file left behind after a reboot never makes us
# kill a stranger that got the same PID.
# Read whole into a variable, not piped into `grep -q`: grep quits at the first match, and under
# pipefail the SIGPIPE tr then gets on its next 4 KiB write (an environment past 4 KiB, e.g. a restart
# from a shell that sourced the env file) made a peer look foreign, and stop left it running.
ours() {
    local cmdline environ
    alive "$1" || return 1
    # (It may vanish meanwhile: then /proc/PID/* are gone, quietly.)
    cmdline=$({ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
    [[ $cmdline == *"$PEERS/"* ]] && return 0
    environ=$({ tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null) || return 1
    [[ $'\n'$environ$'\n' == *$'\n'"REGKEEP_PEERS_OWNER=$PEERS"$'\n'* ]]
}

# spawn NAME CMD...: runs CMD detached (own session, stdin closed, output to NAME/NAME.log) and
# records its PID in NAME/pid. The subshell execs setsid, which (not being a group leader) execs CMD
# in place, so $! is CMD's own PID.
spawn() {
    local name=$1; shift
    (
        export REGKEEP_PEERS_OWNER=$PEERS
        cd "$PEERS/$name" && exec setsid "$@" </dev/null >>"$PEERS/$name/$name.log" 2>&1 8>&-
    ) &
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

# server_cert NAME CN SAN: an end-entity cert (CA:FALSE, serverAuth) from the private CA, as
# NAME.pem and NAME-key.pem.
server_cert() {
    local d=$PEERS name=$1 cn=$2 san=$3
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$d/$name-key.pem" -out "$d/$name.csr" 2>/dev/null
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -days 30 \
        -set_serial "0x$(openssl rand -hex 8)" -out "$d/$name.pem" -extfile <(printf '%s\n' \
            "subjectAltName=$san" 'basicConstraints=critical,CA:FALSE' \
            'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
            'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid') 2>/dev/null
    rm -f "$d/$name.csr"
}

make_certs() {
    local d=$PEERS
    # A private CA, proper for rustls/webpki: v3, CA:TRUE, keyCertSign.
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=regkeep test CA' \
        -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
        -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
    # The TLS registry's cert, for the names tests dial.
    server_cert server localhost 'DNS:localhost,IP:127.0.0.1'
    # The registry under the real ECR name and the other host forms (namespace mode only, but cheap:
    # always made).
    server_cert ecr-server "$ECR_HOST" "DNS:$ECR_HOST$(printf ',DNS:%s' "${NS_ECR_MORE_HOSTS[@]}")"
    # The front for AWS's API names (namespace mode only, likewise).
    server_cert aws-front "${NS_AWS_API_HOSTS[0]}" "$(printf 'DNS:%s,' "${NS_AWS_API_HOSTS[@]}" | sed 's/,$//')"
    # The lab's malicious registry (namespace mode only, likewise).
    server_cert evil evil.test "DNS:evil.test,DNS:*.evil.test,IP:$LAB_EVIL_ADDR"
    # The token signer: self-signed, and it is its own trust anchor (the bearer registry's rootcertbundle).
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=regkeep test token signer' \
        -keyout "$d/token-key.pem" -out "$d/token.pem" 2>/dev/null
    chmod 600 "$d"/*-key.pem
    # skopeo's --cert-dir layout: DIR/ca.crt.
    mkdir -p "$d/certs.d" && cp "$d/ca.pem" "$d/certs.d/ca.crt"
}

# make_credentials PASS: the bcrypt htpasswd files, and a containers auth file for skopeo, so the
# passwords never appear on a command line.
make_credentials() {
    local pass=$1 auth ecr_auth
    htpasswd -niB "$REG_USER" <<<"$pass" >"$PEERS/htpasswd" 2>/dev/null
    htpasswd -niB "$ECR_USER" <<<"$ECR_PASS" >"$PEERS/htpasswd-ecr" 2>/dev/null
    auth=$(printf '%s:%s' "$REG_USER" "$pass" | base64 -w0)
    ecr_auth=$(printf '%s:%s' "$ECR_USER" "$ECR_PASS" | base64 -w0)
    jq -n --arg a "$auth" --arg e "$ecr_auth" --arg ecr "$ECR_HOST" '{auths: {
        "127.0.0.1:'$HTTP_PORT'": {auth: $a}, "127.0.0.1:'$TLS_PORT'": {auth: $a},
        "127.0.0.1:'$BEARER_PORT'": {auth: $a}, ($ecr): {auth: $e}}}' >"$PEERS/auth.json"
    chmod 600 "$PEERS/htpasswd" "$PEERS/htpasswd-ecr" "$PEERS/auth.json"
}

# --- registries -------------------------------------------------------------------------------

# ecr_mode: true inside the test namespace, where the private /etc/hosts maps the ECR name to
# $ECR_ADDR. Elsewhere the name resolves to AWS (or nowhere): that registry is not started, nor the
# adversarial lab (it needs in-namespace.sh's addresses, names and resolv.conf).
ecr_mode() { [[ $(timeout 5 getent hosts "$ECR_HOST" 2>/dev/null | awk '{print $1; exit}') == "$ECR_ADDR" ]]; }

# start_registry NAME ADDR:PORT AUTH_YAML [TLS_YAML]
start_registry() {
    local name=registry-$1 addr=$2 auth=$3 tls=${4:-} dir
    dir=$PEERS/registry-$1
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: "$dir/data"}
  delete: {enabled: true}
http:
  addr: $addr
  secret: $(openssl rand -hex 16)
$tls
$auth
YAML
    spawn "$name" docker-registry serve "$dir/config.yml"
}

start_registries() {
    local htpasswd="auth: {htpasswd: {realm: basic-realm, path: \"$PEERS/htpasswd\"}}"
    start_registry http "127.0.0.1:$HTTP_PORT" "$htpasswd"
    start_registry tls "127.0.0.1:$TLS_PORT" "$htpasswd" \
        "  tls: {certificate: \"$PEERS/server.pem\", key: \"$PEERS/server-key.pem\"}"
    start_registry bearer "127.0.0.1:$BEARER_PORT" "auth: {token: {realm: \"$TOKEN_REALM\", service: $TOKEN_SERVICE, issuer: $TOKEN_ISSUER, rootcertbundle: \"$PEERS/token.pem\"}}"
    start_registry anon "127.0.0.1:$ANON_PORT" ""
    if ((ECR_MODE)); then
        start_registry ecr "$ECR_ADDR:$ECR_PORT" "auth: {htpasswd: {realm: basic-realm, path: \"$PEERS/htpasswd-ecr\"}}" \
            "  tls: {certificate: \"$PEERS/ecr-server.pem\", key: \"$PEERS/ecr-server-key.pem\"}"
    fi
}

start_token_server() { # PASS
    mkdir -p "$PEERS/token-server"
    # Credentials through the environment, not argv (visible in ps).
    TOKEN_USER=$REG_USER TOKEN_PASS=$1 spawn token-server "$PEERS_PY" "$REPO/fixtures/token_server.py" \
        --listen "127.0.0.1:$TOKEN_PORT" --key "$PEERS/token-key.pem" --cert "$PEERS/token.pem" \
        --issuer "$TOKEN_ISSUER" --service "$TOKEN_SERVICE"
}

# start_redirect PASS: fixtures/redirect_registry.py, a front to the Basic registry on $HTTP_PORT that
# redirects blob GETs to its blob host on $BLOB_HOST_ADDR (same user and password).
start_redirect() {
    mkdir -p "$PEERS/redirect-registry"
    REDIRECT_USER=$REG_USER REDIRECT_PASS=$1 spawn redirect-registry "$PEERS_PY" "$REPO/fixtures/redirect_registry.py" \
        --front "127.0.0.1:$REDIRECT_PORT" --blob-host "$BLOB_HOST_ADDR:$BLOB_HOST_PORT" --upstream "127.0.0.1:$HTTP_PORT"
}

wait_registries() {
    wait_http registry-http 401 "http://127.0.0.1:$HTTP_PORT/v2/"
    wait_http registry-tls 401 "https://127.0.0.1:$TLS_PORT/v2/" --cacert "$PEERS/ca.pem"
    wait_http registry-bearer 401 "http://127.0.0.1:$BEARER_PORT/v2/"
    wait_http registry-anon 200 "http://127.0.0.1:$ANON_PORT/v2/"
    wait_http token-server 401 "$TOKEN_REALM?service=$TOKEN_SERVICE"
    wait_http redirect-registry 401 "http://127.0.0.1:$REDIRECT_PORT/v2/"
    wait_http redirect-registry 200 "$REDIRECT_SEEN_URL"
    if ((ECR_MODE)); then
        # By name: proves the private /etc/hosts, the cert's name and the CA together.
        wait_http registry-ecr 401 "https://$ECR_HOST/v2/" --cacert "$PEERS/ca.pem"
    fi
}

# --- AWS: moto, the IMDS fixture, the ECR API fixture -------------------------------------------

# start_moto: moto lets the first N calls through unchecked, N being exactly what seed_aws.py spends;
# from then on it checks keys, signatures and IAM policies (check_aws.py proves it).
start_moto() {
    local free
    mkdir -p "$PEERS/moto" "$PEERS/aws"
    chmod 700 "$PEERS/aws"
    free=$(timeout 30 "$PEERS_PY" "$REPO/fixtures/seed_aws.py" calls) || die "fixtures/seed_aws.py calls failed"
    INITIAL_NO_AUTH_ACTION_COUNT=$free spawn moto "$PEERS_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
}

start_ecr_api() {
    mkdir -p "$PEERS/ecr-api"
    spawn ecr-api "$PEERS_PY" "$REPO/fixtures/ecr_api.py" --listen "127.0.0.1:$ECR_API_PORT" --region "$AWS_REGION"
}

# seed_aws: users, keys, policies and the role, into $SEED_FILE (0600); sets AWS_* from it.
seed_aws() {
    (umask 077 && cd / && timeout 60 "$PEERS_PY" "$REPO/fixtures/seed_aws.py" seed --endpoint "$MOTO_URL" \
        --region "$AWS_REGION" </dev/null >"$SEED_FILE" 2>"$PEERS/aws/seed.log") \
        || { cat "$PEERS/aws/seed.log" >&2; die "seeding moto failed (log: $PEERS/aws/seed.log)"; }
    # jq reads the secrets from the file and prints them: they never sit on a command line.
    if ! { AWS_KEY=$(jq -er .access_key_id "$SEED_FILE") && AWS_SECRET=$(jq -er .secret_access_key "$SEED_FILE") \
        && AWS_NOPERM_KEY=$(jq -er .noperm_access_key_id "$SEED_FILE") \
        && AWS_NOPERM_SECRET=$(jq -er .noperm_secret_access_key "$SEED_FILE") \
        && AWS_GOV_KEY=$(jq -er '.partitions."aws-us-gov".access_key_id' "$SEED_FILE") \
        && AWS_GOV_SECRET=$(jq -er '.partitions."aws-us-gov".secret_access_key' "$SEED_FILE") \
        && AWS_CN_KEY=$(jq -er '.partitions."aws-cn".access_key_id' "$SEED_FILE") \
        && AWS_CN_SECRET=$(jq -er '.partitions."aws-cn".secret_access_key' "$SEED_FILE") \
        && AWS_GOV_ROLE_ARN=$(jq -er '.partitions."aws-us-gov".role_arn' "$SEED_FILE") \
        && AWS_ROLE_ARN=$(jq -er .role_arn "$SEED_FILE") && [[ $(jq -er .account "$SEED_FILE") == "$AWS_ACCOUNT" ]]; }; then
        die "unexpected seeding result in $SEED_FILE"
    fi
    say "moto: seeded users regkeep-test, regkeep-noperm, regkeep-web-identity-broker, regkeep-test in aws-us-gov and aws-cn, and role $AWS_ROLE_ARN"
}

# start_aws_front (namespace mode): fixtures/aws_front.py on $AWS_FRONT_ADDR:443 for every name of
# NS_AWS_API_HOSTS: api.ecr-public.* to the ECR-API fixture (moto has no ECR Public), the rest (ECR,
# STS) to moto. It reads the web-identity brokers' keys from the 0600 seed file, never argv.
start_aws_front() {
    local name routes=()
    mkdir -p "$PEERS/aws-front"
    : >"$AWS_FRONT_LOG"
    for name in "${NS_AWS_API_HOSTS[@]}"; do
        case $name in
        api.ecr-public.*) routes+=(--route "$name=$ECR_API_URL") ;;
        *) routes+=(--route "$name=$MOTO_URL") ;;
        esac
    done
    spawn aws-front "$PEERS_PY" "$REPO/fixtures/aws_front.py" --listen "$AWS_FRONT_ADDR:$AWS_FRONT_PORT" \
        --cert "$PEERS/aws-front.pem" --key "$PEERS/aws-front-key.pem" --log "$AWS_FRONT_LOG" \
        --seed-file "$SEED_FILE" "${routes[@]}"
}

# start_container_credentials (namespace mode): the Pod Identity / ECS credentials stand-in, with a new
# token (0600) on every start. No newline at its end, as in the projected token file Kubernetes writes
# (the Rust SDK sends the file's bytes as they are: a newline makes the header invalid).
start_container_credentials() {
    mkdir -p "$PEERS/container-credentials"
    (umask 077 && printf '%s' "$(openssl rand -hex 24)" >"$PEERS/container-credentials/token")
    IMDS_SOURCE_ACCESS_KEY_ID=$AWS_KEY IMDS_SOURCE_SECRET_ACCESS_KEY=$AWS_SECRET \
        spawn container-credentials "$PEERS_PY" "$REPO/fixtures/container_credentials.py" \
        --listen "127.0.0.1:$CONTAINER_CREDS_PORT" --token-file "$PEERS/container-credentials/token" \
        --sts-endpoint "$MOTO_URL" --role-arn "$AWS_ROLE_ARN" --region "$AWS_REGION" --account "$AWS_ACCOUNT"
}

start_imds() {
    mkdir -p "$PEERS/imds"
    IMDS_SOURCE_ACCESS_KEY_ID=$AWS_KEY IMDS_SOURCE_SECRET_ACCESS_KEY=$AWS_SECRET \
        spawn imds "$PEERS_PY" "$REPO/fixtures/imds.py" --listen "127.0.0.1:$IMDS_PORT" \
        --sts-endpoint "$MOTO_URL" --role-arn "$AWS_ROLE_ARN" --region "$AWS_REGION" --account "$AWS_ACCOUNT"
}

# --- PostgreSQL: a private instance -------------------------------------------------------------

as_postgres() { (cd / && timeout 120 runuser -u postgres -- "$@") </dev/null 8>&-; }

# pg_dir: where the private instance lives. Under $PEERS when user postgres can reach it and the
# socket path fits (107 bytes); otherwise a fresh mktemp directory in /tmp.
pg_dir() {
    local dir=$PEERS/postgres
    if as_postgres test -x "$PEERS" && ((${#dir} + 16 <= 107)); then
        rm -rf "$dir" && mkdir -m 700 "$dir"
    else
        dir=$(mktemp -d /tmp/regkeep-pg.XXXXXXXX)
    fi
    chown postgres:postgres "$dir"
    echo "$dir"
}

start_postgres() {
    local dir
    [[ $(id -u) == 0 ]] || die "starting PostgreSQL needs root (runuser)"
    require_free_port "$PG_PORT" "PostgreSQL"
    dir=$(pg_dir)
    echo "$dir" >"$PG_DIR_FILE"
    as_postgres "$PG_BIN/initdb" -N -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PEERS/postgres-initdb.log" 2>&1 \
        || { tail -n 20 "$PEERS/postgres-initdb.log" >&2; die "initdb failed (log: $PEERS/postgres-initdb.log)"; }
    # Local (socket) connections are trusted: the socket sits in $dir, mode 0700, owner postgres.
    # Durability is traded for speed: test data is thrown away.
    cat >>"$dir/data/postgresql.conf" <<CONF

# scripts/peers.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$WAIT_SECS" start >/dev/null \
        || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start (log: $dir/postgres.log)"; }
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PG_PORT" -d postgres \
        -c "CREATE ROLE regkeep LOGIN CREATEDB PASSWORD 'regkeep'" >/dev/null \
        || die "could not create the PostgreSQL role regkeep"
    timeout 10 psql -X -q -d "$PG_URL" -c 'SELECT 1' </dev/null >/dev/null \
        || die "role regkeep cannot log in with $PG_URL"
    say "postgres: private instance in $dir/data on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
    local dir pid
    [[ -f $PG_DIR_FILE ]] || return 0
    dir=$(<"$PG_DIR_FILE")
    if [[ -f $dir/data/postmaster.pid ]]; then
        pid=$(head -n 1 "$dir/data/postmaster.pid")
        if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
            as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
            if alive "$pid" && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$dir/data"; then
                say "postgres: pg_ctl stop failed; killing $pid"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            say "stopped postgres (pid $pid)"
        fi
    fi
    # A /tmp directory is ours alone and would pile up; the one under $PEERS is kept for a look.
    if [[ $dir == /tmp/regkeep-pg.* ]]; then rm -rf "$dir"; fi
    rm -f "$PG_DIR_FILE"
}

# --- the adversarial lab (namespace mode only) ----------------------------------------------------

# start_lab: the three stand-ins (a new secret each, in a 0600 file, never argv), the DNS server and
# the malicious registry. Needs what scripts/in-namespace.sh set up: the addresses on lo, the names in
# /etc/hosts, the private resolv.conf.
start_lab() {
    local kind addr name lo alternates=()
    lo=$(ip -brief addr show lo)
    for addr in "$LAB_METADATA_ADDR" "$LAB_PRIVATE_ADDR" "$LAB_EVIL_ADDR"; do
        [[ " $lo " == *" $addr/32 "* ]] || die "lab: $addr is not on lo (scripts/in-namespace.sh adds it)"
    done
    grep -qxF "nameserver $LAB_DNS_ADDR" /etc/resolv.conf \
        || die "lab: /etc/resolv.conf does not name $LAB_DNS_ADDR (scripts/in-namespace.sh mounts a private one)"
    mkdir -p "$LAB" && chmod 700 "$LAB"
    for kind in "${!LAB_STANDINS[@]}"; do
        mkdir -p "$PEERS/lab-$kind"
        (umask 077 && printf 'LAB-%s-%s\n' "${kind^^}" "$(openssl rand -hex 16)" >"$LAB/$kind.secret")
        spawn "lab-$kind" "$PEERS_PY" "$REPO/fixtures/lab_standin.py" --listen "${LAB_STANDINS[$kind]}:80" \
            --secret-file "$LAB/$kind.secret" --log "$LAB/$kind.log"
    done
    for name in "${!LAB_REBIND[@]}"; do alternates+=(--alternate "$name=${LAB_REBIND[$name]// /,}"); done
    mkdir -p "$PEERS/lab-dns" "$PEERS/lab-evil"
    spawn lab-dns "$PEERS_PY" "$REPO/fixtures/lab_dns.py" --listen "$LAB_DNS_ADDR:53" --log "$LAB/dns.log" "${alternates[@]}"
    spawn lab-evil "$PEERS_PY" "$REPO/fixtures/evil_registry.py" --http "$LAB_EVIL_ADDR:80" --https "$LAB_EVIL_ADDR:443" \
        --cert "$PEERS/evil.pem" --key "$PEERS/evil-key.pem" --log "$LAB/evil.log" --digests-out "$LAB/evil.json"
}

# wait_lab: every lab listener answers (the malicious registry by name, on both ports, TLS checked
# against ca.pem; the DNS server by resolving through it); sets LAB_*_SECRET and LAB_*_DIGEST.
wait_lab() {
    local kind deadline=$((SECONDS + WAIT_SECS))
    for kind in "${!LAB_STANDINS[@]}"; do
        wait_http "lab-$kind" 200 "http://${LAB_STANDINS[$kind]}/"
    done
    wait_http lab-evil 200 "http://plain.evil.test/v2/"
    wait_http lab-evil 200 "https://plain.evil.test/v2/" --cacert "$PEERS/ca.pem"
    until timeout 5 getent ahostsv4 rebind.evil.test >/dev/null; do
        if ! alive "$(<"$PEERS/lab-dns/pid")"; then
            tail -n 20 "$PEERS/lab-dns/lab-dns.log" >&2 || true
            die "lab-dns exited during start-up (log: $PEERS/lab-dns/lab-dns.log)"
        fi
        ((SECONDS < deadline)) || die "lab-dns: rebind.evil.test did not resolve within ${WAIT_SECS}s (log: $PEERS/lab-dns/lab-dns.log)"
        sleep 0.1
    done
    if ! { LAB_METADATA_SECRET=$(<"$LAB/metadata.secret") && LAB_LOOPBACK_SECRET=$(<"$LAB/loopback.secret") \
        && LAB_PRIVATE_SECRET=$(<"$LAB/private.secret") \
        && LAB_MANIFEST_DIGEST=$(jq -er .manifest_digest "$LAB/evil.json") \
        && LAB_CONFIG_DIGEST=$(jq -er .config_digest "$LAB/evil.json") \
        && LAB_LAYER_DIGEST=$(jq -er .layer_digest "$LAB/evil.json"); }; then
        die "lab: unreadable secrets or $LAB/evil.json"
    fi
}

# lab_lookup v4|unspec NAME: the first address glibc's getaddrinfo gives for NAME (none: empty).
#   v4      getent ahostsv4: AF_INET, an A query only
#   unspec  AF_UNSPEC without AI_ADDRCONFIG (what Rust's std and reqwest's default resolver ask): A
#           and AAAA at once. (Not getent ahosts: its AI_ADDRCONFIG sees no IPv6 but ::1 here, so
#           glibc asks A only.)
lab_lookup() {
    case $1 in
    v4) timeout 5 getent ahostsv4 "$2" | awk 'NR == 1 {print $1}' || true ;;
    unspec) (cd / && timeout 5 "$PEERS_PY" -c 'import socket, sys
print(socket.getaddrinfo(sys.argv[1], 80, 0, socket.SOCK_STREAM)[0][4][0])' "$2" 2>/dev/null) || true ;;
    esac
}

# check_lab: proves the lab behaves as the tests assume, then leaves every log empty and every
# alternation at its start:
#   - each stand-in answers any method with its secret in every credential field and logs the request
#     (method, path with query, Host, Authorization);
#   - the lab names resolve through /etc/hosts; each alternating name answers its addresses in turn,
#     one step per lookup, AF_UNSPEC (A and AAAA at once) included;
#   - the malicious registry: plain content with the right digests (TLS too), the realm-meta challenge,
#     the redirect-meta 307, the escapes 401, an 8 MiB big config, and its log.
check_lab() {
    local kind addr name got want expect i hdr digest evil=http://plain.evil.test evils=https://plain.evil.test
    for kind in "${!LAB_STANDINS[@]}"; do
        addr=${LAB_STANDINS[$kind]}
        got=$(curl -sf --max-time 5 -X PUT -H 'Authorization: Bearer lab-check' "http://$addr/lab-check?x=1") \
            || die "lab-$kind: PUT http://$addr/lab-check?x=1 failed"
        jq -e --rawfile s "$LAB/$kind.secret" '($s | rtrimstr("\n")) as $s | .Code == "Success" and .expires_in == 300
            and ([.AccessKeyId, .SecretAccessKey, .Token, .token, .access_token] | all(. == $s))' <<<"$got" >/dev/null \
            || die "lab-$kind: unexpected answer $got"
        jq -se --arg a "$addr" 'last == {method: "PUT", path: "/lab-check?x=1", host: $a, authorization: "Bearer lab-check"}' \
            "$LAB/$kind.log" >/dev/null || die "lab-$kind: the request is not the last line of $LAB/$kind.log"
        : >"$LAB/$kind.log"
    done
    say "check: ok: lab stand-ins on ${LAB_STANDINS[*]}: secret in every credential field, requests logged (logs emptied)"

    for name in realm-meta.evil.test plain.evil.test evil.test; do
        got=$(timeout 5 getent hosts "$name" | awk 'NR == 1 {print $1}' || true)
        [[ $got == "$LAB_EVIL_ADDR" ]] || die "lab: $name resolves to '$got', not $LAB_EVIL_ADDR (the private /etc/hosts)"
    done
    for name in "${!LAB_REBIND[@]}"; do
        read -ra want <<<"${LAB_REBIND[$name]}"
        lab_lookup v4 "reset.$name" >/dev/null
        got=
        for i in 0 1 2 3; do
            # Two IPv4-only lookups, then two AF_UNSPEC ones (A and AAAA in parallel): one step each.
            if ((i < 2)); then got+=" $(lab_lookup v4 "$name")"; else got+=" $(lab_lookup unspec "$name")"; fi
        done
        expect=" ${want[0]} ${want[1]} ${want[0]} ${want[1]}"
        [[ $got == "$expect" ]] || die "lab DNS: $name answered$got, not$expect"
        lab_lookup v4 "reset.$name" >/dev/null
    done
    [[ $(jq -s '[.[] | select(.type == "AAAA" and .answer == null and (.name | startswith("rebind")))] | length' "$LAB/dns.log") -ge 6 ]] \
        || die "lab DNS: the AF_UNSPEC lookups asked no AAAA ($LAB/dns.log)"
    : >"$LAB/dns.log"
    say "check: ok: lab names via /etc/hosts; lab DNS alternates ${!LAB_REBIND[*]} one step per lookup (AF_UNSPEC, A and AAAA, too); reset"

    hdr=$PEERS/lab-evil/check.headers
    got=$(curl -sf --max-time 5 -D "$hdr" "$evil/v2/lab/check/manifests/v1") || die "lab-evil: manifest GET failed"
    [[ sha256:$(printf '%s' "$got" | sha256sum | cut -d' ' -f1) == "$LAB_MANIFEST_DIGEST" ]] \
        || die "lab-evil: the manifest's digest is not $LAB_MANIFEST_DIGEST"
    grep -qixF "docker-content-digest: $LAB_MANIFEST_DIGEST"$'\r' "$hdr" || die "lab-evil: no Docker-Content-Digest $LAB_MANIFEST_DIGEST"
    jq -e --arg c "$LAB_CONFIG_DIGEST" --arg l "$LAB_LAYER_DIGEST" '.mediaType == "application/vnd.oci.image.manifest.v1+json"
        and .config.digest == $c and .layers[0].digest == $l' <<<"$got" >/dev/null || die "lab-evil: unexpected manifest $got"
    for digest in "$LAB_CONFIG_DIGEST" "$LAB_LAYER_DIGEST"; do
        got=sha256:$(curl -sf --max-time 5 --cacert "$PEERS/ca.pem" "$evils/v2/lab/check/blobs/$digest" | sha256sum | cut -d' ' -f1)
        [[ $got == "$digest" ]] || die "lab-evil: blob $digest read back (TLS) as $got"
    done
    got=$(curl -s -o /dev/null -w '%{http_code} %header{www-authenticate}' --max-time 5 http://realm-meta.evil.test/v2/)
    [[ $got == "401 Bearer realm=\"$LAB_META_URL\",service=\"evil\"" ]] || die "lab-evil: realm-meta /v2/ answered '$got'"
    got=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "http://redirect-meta.evil.test/v2/lab/check/manifests/v1")
    [[ $got == "307 $LAB_META_URL" ]] || die "lab-evil: redirect-meta manifest GET answered '$got'"
    got=$(curl -s -o /dev/null -w '%{http_code} %header{www-authenticate}' --max-time 5 -u x:y http://escapes.evil.test/v2/)
    [[ $got == '401 Basic realm="evil"' ]] || die "lab-evil: escapes /v2/ answered '$got'"
    got=$(curl -sf --max-time 10 http://big.evil.test/v2/big/1/manifests/v1 | jq -r .config.digest) || die "lab-evil: big/1 manifest GET failed"
    [[ $(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 20 "http://big.evil.test/v2/big/1/blobs/$got") == "200 8388608" ]] \
        || die "lab-evil: big/1's config $got is not 8 MiB"
    [[ $(wc -l <"$LAB/evil.log") -ge 7 ]] || die "lab-evil: $LAB/evil.log does not hold the check's requests"
    : >"$LAB/evil.log"
    rm -f "$hdr"
    say "check: ok: lab registry on $LAB_EVIL_ADDR:80/443: plain content ($LAB_MANIFEST_DIGEST, TLS with ca.pem), realm-meta challenge, redirect-meta 307, escapes 401 Basic, big 8 MiB config; log emptied"
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

# image_manifest WORK TEXT PLATFORM_JSON: a one-layer image in $LAYOUT's blob store (the layer: file
# hello.txt holding TEXT; the config: PLATFORM_JSON, e.g. "architecture":"amd64","os":"linux", plus
# the layer's diff_id); prints its OCI manifest's "sha256:<hex> <size>". Deterministic: fixed content,
# mode, owner and mtime, gzip without name or time.
image_manifest() {
    local work=$1 text=$2 platform=$3 out diff_id layer_digest layer_size config_digest config_size
    rm -rf "$work" && mkdir -p "$work/rootfs"
    printf '%s\n' "$text" >"$work/rootfs/hello.txt"
    chmod 0644 "$work/rootfs/hello.txt"
    tar --sort=name --mtime='2020-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
        -C "$work/rootfs" -cf "$work/layer.tar" hello.txt
    diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
    out=$(blob "$work/layer.tar.gz")
    read -r layer_digest layer_size <<<"$out"
    printf '%s' '{'"$platform"',"created":"2020-01-01T00:00:00Z","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' >"$work/config.json"
    out=$(blob "$work/config.json")
    read -r config_digest config_size <<<"$out"
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"'"$layer_digest"'","size":'"$layer_size"'}]}' >"$work/manifest.json"
    blob "$work/manifest.json"
    rm -rf "$work"
}

# layout_index MEDIA_TYPE DIGEST SIZE: $LAYOUT's oci-layout and index.json, tag v1 naming DIGEST.
layout_index() {
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
    printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"'"$1"'","digest":"'"$2"'","size":'"$3"',"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' >"$LAYOUT/index.json"
}

# build_layout: test/hello, a deterministic one-layer OCI image layout at $LAYOUT, tag v1 (same
# digests on every run and machine); sets MANIFEST_DIGEST.
build_layout() {
    local out manifest_size
    rm -rf "$LAYOUT" && mkdir -p "$LAYOUT/blobs/sha256"
    out=$(image_manifest "$PEERS/oci/work" 'hello from the regkeep test image' '"architecture":"amd64","os":"linux"')
    read -r MANIFEST_DIGEST manifest_size <<<"$out"
    layout_index application/vnd.oci.image.manifest.v1+json "$MANIFEST_DIGEST" "$manifest_size"
}

# build_multi_layout: test/multi, a deterministic two-platform OCI image layout at $LAYOUT: tag v1 is
# an OCI image index (a blob of the layout, named by index.json) of two one-layer manifests,
# linux/amd64 and linux/arm64 variant v8, each with its own config and layer. Sets MULTI_DIGEST (the
# index), MULTI_AMD64_DIGEST and MULTI_ARM64_DIGEST.
build_multi_layout() {
    local out amd64_size arm64_size index_size m=application/vnd.oci.image.manifest.v1+json
    rm -rf "$LAYOUT" && mkdir -p "$LAYOUT/blobs/sha256"
    out=$(image_manifest "$PEERS/oci/work" 'hello from the regkeep test image, linux/amd64' \
        '"architecture":"amd64","os":"linux"')
    read -r MULTI_AMD64_DIGEST amd64_size <<<"$out"
    out=$(image_manifest "$PEERS/oci/work" 'hello from the regkeep test image, linux/arm64/v8' \
        '"architecture":"arm64","os":"linux","variant":"v8"')
    read -r MULTI_ARM64_DIGEST arm64_size <<<"$out"
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"'$m'","digest":"'"$MULTI_AMD64_DIGEST"'","size":'"$amd64_size"',"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"'$m'","digest":"'"$MULTI_ARM64_DIGEST"'","size":'"$arm64_size"',"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}' >"$PEERS/oci/multi-index.json"
    out=$(blob "$PEERS/oci/multi-index.json")
    read -r MULTI_DIGEST index_size <<<"$out"
    layout_index application/vnd.oci.image.index.v1+json "$MULTI_DIGEST" "$index_size"
}

# registry_flags HOST PREFIX: sets FLAGS to skopeo's TLS and credential options for registry HOST,
# each option prefixed with PREFIX ("dest-" for copy's destination, "" for inspect): the CA via a cert
# dir or plain HTTP (tls-verify=false); creds from auth.json, none for the anonymous registry.
registry_flags() {
    local p=$2
    case $1 in
    "127.0.0.1:$TLS_PORT" | "$ECR_HOST") FLAGS=("--${p}cert-dir" "$PEERS/certs.d") ;;
    *) FLAGS=("--${p}tls-verify=false") ;;
    esac
    if [[ $1 == "127.0.0.1:$ANON_PORT" ]]; then FLAGS+=("--${p}no-creds"); else FLAGS+=("--${p}authfile" "$PEERS/auth.json"); fi
}

# seed_images: builds the layouts and pushes them with skopeo, every push at once:
#   test/hello:v1       into every registry; the OCI manifest goes in unchanged, so its digest in each
#                       registry is $MANIFEST_DIGEST
#   test/multi:v1       (copy --all) into the four on 127.0.0.1; index and manifests go in unchanged
#   test/hello-v2s2:v1  (copy --format v2s2 of test/hello) into the same four; skopeo converts, so the
#                       digest (V2S2_DIGEST) is read back from the registries
# then reads both back from each of the four (skopeo inspect --raw, hashed): test/multi:v1 must be
# $MULTI_DIGEST everywhere, test/hello-v2s2:v1 a Docker schema 2 manifest, the same everywhere.
seed_images() {
    LAYOUT=$PEERS/oci/hello
    build_layout
    LAYOUT=$PEERS/oci/multi
    build_multi_layout
    local hosts=("127.0.0.1:$HTTP_PORT" "127.0.0.1:$TLS_PORT" "127.0.0.1:$BEARER_PORT" "127.0.0.1:$ANON_PORT")
    local host kind job digest jobs=() from=() FLAGS=()
    local -A pids=() images=([hello]=$IMAGE [multi]=$MULTI_IMAGE [v2s2]=$V2S2_IMAGE)
    for host in "${hosts[@]}"; do jobs+=("$host hello" "$host multi" "$host v2s2"); done
    if ((ECR_MODE)); then jobs+=("$ECR_HOST hello"); fi
    for job in "${jobs[@]}"; do
        read -r host kind <<<"$job"
        registry_flags "$host" dest-
        case $kind in
        hello) from=("oci:$PEERS/oci/hello:v1") ;;
        multi) from=(--all "oci:$PEERS/oci/multi:v1") ;;
        v2s2) from=(--format v2s2 "oci:$PEERS/oci/hello:v1") ;;
        esac
        timeout 60 skopeo --insecure-policy copy -q "${FLAGS[@]}" "${from[@]}" "docker://$host/${images[$kind]}" \
            </dev/null >"$PEERS/oci/seed-$kind-${host//[:.]/_}.log" 2>&1 &
        pids[$job]=$!
    done
    for job in "${!pids[@]}"; do
        read -r host kind <<<"$job"
        wait "${pids[$job]}" || { cat "$PEERS/oci/seed-$kind-${host//[:.]/_}.log" >&2; die "seeding ${images[$kind]} into $host failed"; }
    done

    pids=()
    for host in "${hosts[@]}"; do
        registry_flags "$host" ""
        for kind in multi v2s2; do
            timeout 60 skopeo inspect --raw "${FLAGS[@]}" "docker://$host/${images[$kind]}" \
                </dev/null >"$PEERS/oci/raw-$kind-${host//[:.]/_}.json" 2>"$PEERS/oci/raw-$kind-${host//[:.]/_}.log" &
            pids["$host $kind"]=$!
        done
    done
    for job in "${!pids[@]}"; do
        read -r host kind <<<"$job"
        wait "${pids[$job]}" || { cat "$PEERS/oci/raw-$kind-${host//[:.]/_}.log" >&2; die "skopeo inspect --raw docker://$host/${images[$kind]} failed"; }
    done
    V2S2_DIGEST=
    for host in "${hosts[@]}"; do
        digest=sha256:$(sha256sum <"$PEERS/oci/raw-multi-${host//[:.]/_}.json" | cut -d' ' -f1)
        [[ $digest == "$MULTI_DIGEST" ]] || die "$host/$MULTI_IMAGE has digest $digest, not $MULTI_DIGEST (the layout's index)"
        jq -e '.mediaType == "application/vnd.docker.distribution.manifest.v2+json"' \
            "$PEERS/oci/raw-v2s2-${host//[:.]/_}.json" >/dev/null || die "$host/$V2S2_IMAGE is not a Docker schema 2 manifest"
        digest=sha256:$(sha256sum <"$PEERS/oci/raw-v2s2-${host//[:.]/_}.json" | cut -d' ' -f1)
        : "${V2S2_DIGEST:=$digest}"
        [[ $digest == "$V2S2_DIGEST" ]] || die "$V2S2_IMAGE differs between registries: $digest in $host, $V2S2_DIGEST in ${hosts[0]}"
    done
    say "seeded $IMAGE ($MANIFEST_DIGEST), $MULTI_IMAGE ($MULTI_DIGEST), $V2S2_IMAGE ($V2S2_DIGEST)"
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
                REGKEEP_TEST_REGISTRY_REDIRECT "127.0.0.1:$REDIRECT_PORT" \
                REGKEEP_TEST_REDIRECT_SEEN_URL "$REDIRECT_SEEN_URL" \
                REGKEEP_TEST_REGISTRY_USER "$REG_USER" \
                REGKEEP_TEST_REGISTRY_PASS "$1" \
                REGKEEP_TEST_CA "$PEERS/ca.pem" \
                REGKEEP_TEST_TOKEN_REALM "$TOKEN_REALM" \
                REGKEEP_TEST_IMAGE "$IMAGE" \
                REGKEEP_TEST_IMAGE_DIGEST "$MANIFEST_DIGEST" \
                REGKEEP_TEST_MULTI_IMAGE "$MULTI_IMAGE" \
                REGKEEP_TEST_MULTI_DIGEST "$MULTI_DIGEST" \
                REGKEEP_TEST_MULTI_AMD64_DIGEST "$MULTI_AMD64_DIGEST" \
                REGKEEP_TEST_MULTI_ARM64_DIGEST "$MULTI_ARM64_DIGEST" \
                REGKEEP_TEST_V2S2_IMAGE "$V2S2_IMAGE" \
                REGKEEP_TEST_V2S2_DIGEST "$V2S2_DIGEST" \
                REGKEEP_TEST_POSTGRES_URL "$PG_URL" \
                REGKEEP_TEST_MOTO_URL "$MOTO_URL" \
                REGKEEP_TEST_AWS_ACCESS_KEY_ID "$AWS_KEY" \
                REGKEEP_TEST_AWS_SECRET_ACCESS_KEY "$AWS_SECRET" \
                REGKEEP_TEST_AWS_NOPERM_ACCESS_KEY_ID "$AWS_NOPERM_KEY" \
                REGKEEP_TEST_AWS_NOPERM_SECRET_ACCESS_KEY "$AWS_NOPERM_SECRET" \
                REGKEEP_TEST_AWS_ROLE_ARN "$AWS_ROLE_ARN" \
                REGKEEP_TEST_AWS_ACCOUNT "$AWS_ACCOUNT" \
                REGKEEP_TEST_AWS_REGION "$AWS_REGION" \
                REGKEEP_TEST_IMDS_URL "$IMDS_URL" \
                REGKEEP_TEST_ECR_FIXTURE_URL "$ECR_API_URL" \
                REGKEEP_TEST_ANCHORE_CLI "$ANCHORE_CLI" \
                REGKEEP_TEST_SKOPEO "$(command -v skopeo)" \
                REGKEEP_TEST_PEERS_DIR "$PEERS" \
                REGKEEP_TEST_PYTHON "$PEERS_PY" \
                REGKEEP_TEST_REQUIRE_PEERS 1
            if ((ECR_MODE)); then
                printf 'export %s=%q\n' \
                    REGKEEP_TEST_REGISTRY_ECR "$ECR_HOST" \
                    REGKEEP_TEST_LAB 1 \
                    REGKEEP_TEST_LAB_DIR "$LAB" \
                    REGKEEP_TEST_LAB_METADATA_SECRET "$LAB_METADATA_SECRET" \
                    REGKEEP_TEST_LAB_LOOPBACK_SECRET "$LAB_LOOPBACK_SECRET" \
                    REGKEEP_TEST_LAB_PRIVATE_SECRET "$LAB_PRIVATE_SECRET" \
                    REGKEEP_TEST_LAB_MANIFEST_DIGEST "$LAB_MANIFEST_DIGEST" \
                    REGKEEP_TEST_LAB_CONFIG_DIGEST "$LAB_CONFIG_DIGEST" \
                    REGKEEP_TEST_LAB_LAYER_DIGEST "$LAB_LAYER_DIGEST" \
                    REGKEEP_TEST_AWS_FRONT_LOG "$AWS_FRONT_LOG" \
                    REGKEEP_TEST_AWS_GOV_ACCESS_KEY_ID "$AWS_GOV_KEY" \
                    REGKEEP_TEST_AWS_GOV_SECRET_ACCESS_KEY "$AWS_GOV_SECRET" \
                    REGKEEP_TEST_AWS_GOV_ROLE_ARN "$AWS_GOV_ROLE_ARN" \
                    REGKEEP_TEST_AWS_CN_ACCESS_KEY_ID "$AWS_CN_KEY" \
                    REGKEEP_TEST_AWS_CN_SECRET_ACCESS_KEY "$AWS_CN_SECRET" \
                    REGKEEP_TEST_CONTAINER_CREDENTIALS_URL "$CONTAINER_CREDS_URL" \
                    REGKEEP_TEST_CONTAINER_TOKEN_FILE "$PEERS/container-credentials/token"
            fi
        } >"$tmp"
    )
    mv "$tmp" "$ENV_FILE"
}

# --- checks -------------------------------------------------------------------------------------

# check_peers: proves the AWS peers and the ECR-name registry behave as the tests assume. The IMDSv2
# flow by hand with curl (the token goes in through stdin, -H @-), then fixtures/check_aws.py with
# exactly the env file the tests get (moto's auth, botocore with the IMDS, the ECR fixture, the
# registry with moto's token), then skopeo as user AWS. Leaves the fixtures' counters at zero.
check_peers() {
    local token role creds region
    token=$(curl -sf --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS_URL/latest/api/token") \
        || die "IMDS: PUT /latest/api/token failed"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$IMDS_URL/latest/meta-data/iam/security-credentials/") == 401 ]] \
        || die "IMDS: a GET without a token was not refused with 401"
    role=$(curl -sf --max-time 5 -H @- "$IMDS_URL/latest/meta-data/iam/security-credentials/" <<<"X-aws-ec2-metadata-token: $token") \
        || die "IMDS: GET security-credentials/ with the token failed"
    creds=$(curl -sf --max-time 10 -H @- "$IMDS_URL/latest/meta-data/iam/security-credentials/$role" <<<"X-aws-ec2-metadata-token: $token") \
        || die "IMDS: GET security-credentials/$role failed"
    jq -e '.Code == "Success" and .Type == "AWS-HMAC" and (.AccessKeyId | startswith("ASIA"))
        and (.SecretAccessKey | length > 0) and (.Token | length > 0) and (.Expiration | length > 0)
        and (.LastUpdated | length > 0)' <<<"$creds" >/dev/null || die "IMDS: unexpected credentials JSON"
    region=$(curl -sf --max-time 5 -H @- "$IMDS_URL/latest/meta-data/placement/region" <<<"X-aws-ec2-metadata-token: $token")
    [[ $region == "$AWS_REGION" ]] || die "IMDS: region is '$region'"
    curl -sf --max-time 5 -H @- "$IMDS_URL/latest/dynamic/instance-identity/document" <<<"X-aws-ec2-metadata-token: $token" \
        | jq -e --arg r "$AWS_REGION" '.region == $r' >/dev/null || die "IMDS: bad instance-identity document"
    say "check: ok: IMDS (curl): token, 401 without it, role $role, credentials JSON (Code Success, ASIA key), region $region"

    (
        # shellcheck source=/dev/null
        source "$ENV_FILE"
        cd / && timeout 120 "$PEERS_PY" "$REPO/fixtures/check_aws.py" </dev/null
    ) | sed 's/^/peers: /' || die "AWS peer checks failed (above)"

    if ((ECR_MODE)); then
        local digest
        digest=$(timeout 60 skopeo inspect --cert-dir "$PEERS/certs.d" --authfile "$PEERS/auth.json" \
            --format '{{.Digest}}' "docker://$ECR_HOST/$IMAGE" </dev/null) || die "skopeo inspect of $ECR_HOST/$IMAGE failed"
        [[ $digest == "$MANIFEST_DIGEST" ]] || die "$ECR_HOST/$IMAGE has digest $digest, not $MANIFEST_DIGEST"
        say "check: ok: skopeo inspect docker://$ECR_HOST/$IMAGE as user AWS (TLS, CA $PEERS/ca.pem): $digest"
    fi
    curl -sf --max-time 5 -X POST "$IMDS_URL/_reset" >/dev/null || die "IMDS: /_reset failed"
}

# check_redirect PASS: the redirecting registry with curl (credentials through stdin, -K -): 401 without
# them; test/hello:v1's manifest through the front; a blob GET answered 307 to the blob host; curl -L
# gets the blob there without the Authorization header (curl keeps credentials to the first host);
# /_seen counts it; /_reset zeroes the counters.
check_redirect() {
    local front=http://127.0.0.1:$REDIRECT_PORT check=$PEERS/redirect-registry/check creds got digest layer seen
    creds=$(printf 'user = "%s:%s"' "$REG_USER" "$1")
    got=$(curl -s -o /dev/null -w '%{http_code} %header{www-authenticate}' --max-time 5 "$front/v2/")
    [[ $got == '401 Basic realm="regkeep-redirect"' ]] || die "redirect front: /v2/ without credentials answered '$got'"
    curl -sf --max-time 5 -K - -H 'Accept: application/vnd.oci.image.manifest.v1+json' -o "$check.json" \
        -D "$check.headers" "$front/v2/test/hello/manifests/v1" <<<"$creds" \
        || die "redirect front: GET /v2/test/hello/manifests/v1 failed"
    digest=sha256:$(sha256sum <"$check.json" | cut -d' ' -f1)
    [[ $digest == "$MANIFEST_DIGEST" ]] || die "redirect front: test/hello:v1 has digest $digest, not $MANIFEST_DIGEST"
    grep -qixF "docker-content-digest: $MANIFEST_DIGEST"$'\r' "$check.headers" \
        || die "redirect front: no Docker-Content-Digest $MANIFEST_DIGEST"
    layer=$(jq -r '.layers[0].digest' "$check.json")
    got=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 -K - "$front/v2/test/hello/blobs/$layer" <<<"$creds")
    [[ $got == "307 http://$BLOB_HOST_ADDR:$BLOB_HOST_PORT/blobs/test/hello/$layer" ]] \
        || die "redirect front: a blob GET answered '$got', not a 307 to the blob host"
    digest=sha256:$(curl -sfL --max-time 10 -K - "$front/v2/test/hello/blobs/$layer" <<<"$creds" | sha256sum | cut -d' ' -f1)
    [[ $digest == "$layer" ]] || die "redirect blob host: the blob read back as $digest, not $layer"
    seen=$(curl -sf --max-time 5 "$REDIRECT_SEEN_URL") || die "redirect blob host: GET /_seen failed"
    [[ $(jq -c . <<<"$seen") == '{"requests":1,"with_authorization":0}' ]] \
        || die "redirect blob host: /_seen after one credential-free fetch says $seen"
    curl -sf --max-time 5 -X POST "${REDIRECT_SEEN_URL%/_seen}/_reset" >/dev/null || die "redirect blob host: /_reset failed"
    [[ $(curl -sf --max-time 5 "$REDIRECT_SEEN_URL" | jq -c .) == '{"requests":0,"with_authorization":0}' ]] \
        || die "redirect blob host: /_reset did not zero the counters"
    say "check: ok: redirect registry (curl): 401 Basic realm=\"regkeep-redirect\" without credentials, $IMAGE through the front, blob GET 307 to $BLOB_HOST_ADDR:$BLOB_HOST_PORT, fetched there without Authorization (/_seen), /_reset"
}

# check_aws_names (namespace mode): AWS under its real names. The front answers by name through TLS
# (ca.pem), logs the SNI and Host, routes to moto (an unsigned STS call is moto's 403 or 500, never
# the front's 421) and refuses a name it has no route for; the container-credentials endpoint wants
# its token; the ECR-name registry answers under every other host form (skopeo, as user AWS). Leaves
# the front's log empty and the endpoint's counters at zero.
check_aws_names() {
    local got name token digest
    : >"$AWS_FRONT_LOG"   # start-up's wait_http asked too
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$PEERS/ca.pem" \
        "https://api.ecr-public.us-east-1.amazonaws.com/_calls")
    [[ $got == 200 ]] || die "aws-front: GET https://api.ecr-public.us-east-1.amazonaws.com/_calls answered $got"
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$PEERS/ca.pem" \
        --resolve "unrouted.example:443:$AWS_FRONT_ADDR" -k "https://unrouted.example/")
    [[ $got == 421 ]] || die "aws-front: a Host without a route answered $got, not 421"
    jq -se '.[0].sni == "api.ecr-public.us-east-1.amazonaws.com" and .[0].host == "api.ecr-public.us-east-1.amazonaws.com"
        and .[0].status == 200 and .[1].sni == "unrouted.example" and .[1].status == 421 and .[1].upstream == null' \
        "$AWS_FRONT_LOG" >/dev/null || die "aws-front: unexpected log $(cat "$AWS_FRONT_LOG")"
    : >"$AWS_FRONT_LOG"
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Authorization: not-the-token' "$CONTAINER_CREDS_URL")
    [[ $got == 401 ]] || die "container credentials: a wrong token answered $got, not 401"
    token=$(<"$PEERS/container-credentials/token")
    curl -sf --max-time 10 -H @- "$CONTAINER_CREDS_URL" <<<"Authorization: $token" \
        | jq -e '(.AccessKeyId | startswith("ASIA")) and (.SecretAccessKey | length > 0) and (.Token | length > 0)
            and .AccountId == "'"$AWS_ACCOUNT"'" and (.Expiration | endswith("Z"))' >/dev/null \
        || die "container credentials: unexpected answer to the right token"
    curl -sf --max-time 5 -X POST "http://127.0.0.1:$CONTAINER_CREDS_PORT/_reset" >/dev/null || die "container credentials: /_reset failed"
    for name in "${NS_ECR_MORE_HOSTS[@]}"; do
        # skopeo reads credentials by registry name: one auth file entry per name, same user and password.
        (umask 077 && jq --arg n "$name" --arg ecr "$ECR_HOST" '.auths[$n] = .auths[$ecr]' "$PEERS/auth.json" >"$PEERS/auth-more.json")
        mkdir -p "$PEERS/certs-more.d/$name" && cp "$PEERS/ca.pem" "$PEERS/certs-more.d/$name/ca.crt"
        digest=$(timeout 60 skopeo inspect --cert-dir "$PEERS/certs-more.d/$name" --authfile "$PEERS/auth-more.json" \
            --format '{{.Digest}}' "docker://$name/$IMAGE" </dev/null) || die "skopeo inspect of $name/$IMAGE failed"
        [[ $digest == "$MANIFEST_DIGEST" ]] || die "$name/$IMAGE has digest $digest, not $MANIFEST_DIGEST"
    done
    rm -rf "$PEERS/auth-more.json" "$PEERS/certs-more.d"
    say "check: ok: AWS front by name (TLS, ca.pem, SNI and Host logged; 421 without a route; log emptied); container credentials (401 for a wrong token, ASIA credentials for the right one); $IMAGE under ${NS_ECR_MORE_HOSTS[*]}"
}

# --- commands ---------------------------------------------------------------------------------

cmd_start() {
    local t0=$SECONDS pass f port ports
    for f in docker-registry htpasswd skopeo openssl curl jq ss getent runuser setsid flock psql \
        "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PEERS_PY" "$PEERS_VENV/bin/moto_server" "$ANCHORE_CLI"; do
        command -v "$f" >/dev/null || die "$f not found: run scripts/install-deps.sh first"
    done
    mkdir -p "$PEERS"
    stop_processes
    stop_postgres
    rm -f "$ENV_FILE" "$SEED_FILE"
    ECR_MODE=0
    if ecr_mode; then ECR_MODE=1; fi
    ports=("$HTTP_PORT:registry http" "$TLS_PORT:registry tls" "$BEARER_PORT:registry bearer"
        "$TOKEN_PORT:token server" "$ANON_PORT:registry anon" "$REDIRECT_PORT:redirect registry front"
        "$BLOB_HOST_PORT:redirect registry blob host" "$MOTO_PORT:moto" "$IMDS_PORT:IMDS fixture"
        "$ECR_API_PORT:ECR API fixture" "$PG_PORT:PostgreSQL")
    if ((ECR_MODE)); then ports+=("$ECR_PORT:registry ecr, lab registry and AWS front" "80:lab stand-ins and registry" "53:lab DNS"
        "$CONTAINER_CREDS_PORT:container credentials"); fi
    for port in "${ports[@]}"; do
        require_free_port "${port%%:*}" "${port#*:}"
    done
    # A start that fails half-way leaves nothing running; a signal becomes an exit, and the clean-up
    # itself is not interrupted by a second one.
    trap 'rc=$?; trap "" INT TERM; if ((rc)); then say "start failed: stopping what was started"; cmd_stop >&2; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    rm -rf "$PEERS"/registry-* "$PEERS/token-server" "$PEERS/redirect-registry" "$PEERS/oci" "$PEERS/moto" "$PEERS/imds" "$PEERS/ecr-api" "$PEERS/aws" \
        "$PEERS/aws-front" "$PEERS/container-credentials" \
        "$LAB" "$PEERS"/lab-*
    make_certs
    pass=$(openssl rand -hex 16)
    make_credentials "$pass"
    # Everything that needs no one else first, so they boot while PostgreSQL is set up.
    start_registries
    start_token_server "$pass"
    start_redirect "$pass"
    start_moto
    start_ecr_api
    if ((ECR_MODE)); then start_lab; fi
    start_postgres
    wait_registries
    if ((ECR_MODE)); then wait_lab; fi
    wait_http moto 200 "$MOTO_URL/moto-api/data.json"   # not an AWS action: spends no free call
    seed_aws
    start_imds
    if ((ECR_MODE)); then start_aws_front; start_container_credentials; fi
    wait_http ecr-api 200 "$ECR_API_URL/_calls"
    wait_http imds 401 "$IMDS_URL/latest/meta-data/"   # it listens once it holds credentials
    if ((ECR_MODE)); then
        # By name, through TLS with ca.pem: the front routes api.ecr-public.* to the ECR-API fixture.
        wait_http aws-front 200 "https://api.ecr-public.us-east-1.amazonaws.com/_calls" --cacert "$PEERS/ca.pem"
        wait_http container-credentials 401 "$CONTAINER_CREDS_URL"   # it listens once it holds credentials
    fi
    seed_images
    write_env "$pass"
    say "peers up in $((SECONDS - t0))s ($( ((ECR_MODE)) && echo "namespace mode: with $ECR_HOST and the adversarial lab" \
        || echo "host mode: no ECR-name registry, no adversarial lab")); checking them"
    check_peers
    check_redirect "$pass"
    if ((ECR_MODE)); then check_lab; check_aws_names; fi
    trap - EXIT INT TERM
    say "all peers up and checked in $((SECONDS - t0))s; env: $ENV_FILE"
}

cmd_stop() {
    [[ -d $PEERS ]] || return 0
    stop_processes
    stop_postgres
    rm -f "$ENV_FILE" "$SEED_FILE"
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
