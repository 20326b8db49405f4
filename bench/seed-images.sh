#!/usr/bin/env bash
# Seeds benchmark content into the anonymous (REGKEEP_TEST_REGISTRY_ANON, 127.0.0.1:15004) and the
# Bearer (REGKEEP_TEST_REGISTRY_BEARER, 127.0.0.1:15002) registries of scripts/peers.sh:
#
#   bench/tags:t000 .. t499   500 tiny single-platform (linux/amd64) OCI images, one per tag: each its own
#                             config (label org.regkeep.bench.tag=tNNN), all the same one small layer.
#                             Pushed with curl through the registry API (blob uploads and manifest PUTs,
#                             each phase one curl process running its transfers in parallel): skopeo
#                             500 times would take minutes.
#   bench/big:v1              a ~200 MB image of 4 layers of random (incompressible) data, gzip -1,
#                             built once as an OCI layout under target/bench/big (kept and reused) and
#                             pushed with skopeo.
#
# Run inside the test namespace with the peers up:  scripts/test-shell.sh bash bench/seed-images.sh
# (or from scripts/test-shell.sh's shell). It reads the peers' env file ($REGKEEP_TEST_PEERS_DIR/env,
# sourced when the variables are not set) and, for the Bearer registry, auth.json next to it (the Basic
# credentials for the token server come from there and travel in a file, never on a command line).
#
# Idempotent: tags the registry already lists (GET /v2/<name>/tags/list) are not pushed again, nor is
# bench/big:v1 when its manifest is there (HEAD). The registries' storage lives in target/peers and is
# wiped by every scripts/peers.sh start, so each new peers session needs one run. Prints timings.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${REGKEEP_TEST_REGISTRY_ANON:-} || -z ${REGKEEP_TEST_PEERS_DIR:-} ]]; then
    # shellcheck source=/dev/null
    source "$REPO/target/peers/env" 2>/dev/null \
        || { echo "seed-images: no peers env: run inside scripts/test-shell.sh (peers up)" >&2; exit 1; }
fi
ANON=$REGKEEP_TEST_REGISTRY_ANON
BEARER=$REGKEEP_TEST_REGISTRY_BEARER
AUTH_FILE=$REGKEEP_TEST_PEERS_DIR/auth.json
TAGS_REPO=bench/tags TAG_COUNT=500
BIG_REPO=bench/big BIG_LAYOUT=$REPO/target/bench/big BIG_LAYERS=4 BIG_LAYER_MIB=50
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
PARALLEL=8   # transfers at once per curl process (2 cores here; the registry is the bottleneck)

say() { printf 'seed-images: %s\n' "$*"; }
die() { printf 'seed-images: error: %s\n' "$*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
span() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f s", b - a }'; }
since() { span "$1" "$(now)"; }

for tool in curl jq skopeo sha256sum gzip tar; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -r $AUTH_FILE ]] || die "$AUTH_FILE not readable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/regkeep-seed-images.XXXXXXXX")
chmod 700 "$WORK"
trap 'rm -rf "$WORK"' EXIT

# --- auth ---------------------------------------------------------------------------------------

# auth_header REGISTRY SCOPE: writes to stdout the curl config line carrying REGISTRY's Authorization
# header for SCOPE (nothing for an anonymous registry). For a Bearer registry: the realm and service
# from its 401, a token from the token server with the Basic credentials of auth.json.
auth_header() {
    local reg=$1 scope=$2 challenge realm service basic token
    challenge=$(curl -s -o /dev/null -w '%header{www-authenticate}' --max-time 10 "http://$reg/v2/")
    [[ -z $challenge ]] && return 0
    [[ $challenge == Bearer* ]] || die "$reg: unexpected challenge '$challenge'"
    realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
    service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")
    basic=$(jq -er --arg r "$reg" '.auths[$r].auth' "$AUTH_FILE") || die "$AUTH_FILE holds no credentials for $reg"
    token=$(curl -sSf --max-time 10 -G -K - --data-urlencode "service=$service" --data-urlencode "scope=$scope" \
        "$realm" <<<"header = \"Authorization: Basic $basic\"" | jq -er .token) || die "$reg: no token from $realm for $scope"
    printf 'header = "Authorization: Bearer %s"\n' "$token"
}

# --- bench/tags: 500 tiny images through the registry API -----------------------------------------

# The shared layer (deterministic) and the 500 configs and manifests, written once into $WORK/tags.
build_tags() {
    local d=$WORK/tags i tag diff_id layer_digest layer_size name hex size
    mkdir -p "$d/rootfs"
    printf 'regkeep benchmark layer\n' >"$d/rootfs/bench.txt"
    chmod 0644 "$d/rootfs/bench.txt"
    tar --sort=name --mtime='2020-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
        -C "$d/rootfs" -cf "$d/layer.tar" bench.txt
    diff_id=sha256:$(sha256sum <"$d/layer.tar" | cut -d' ' -f1)
    gzip -n -9 <"$d/layer.tar" >"$d/layer.tar.gz"
    layer_digest=sha256:$(sha256sum <"$d/layer.tar.gz" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$d/layer.tar.gz")
    echo "$layer_digest" >"$d/layer.digest"
    for ((i = 0; i < TAG_COUNT; i++)); do
        printf -v tag 't%03d' "$i"
        printf '{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z","config":{"Labels":{"org.regkeep.bench.tag":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
            "$tag" "$diff_id" >"$d/config-$tag.json"
    done
    # One sha256sum and one stat for all 500 configs.
    paste -d' ' <(cd "$d" && sha256sum config-t*.json) <(cd "$d" && stat -c %s config-t*.json) |
        while read -r hex name size; do
            tag=${name#config-} tag=${tag%.json}
            echo "sha256:$hex" >"$d/config-$tag.digest"
            printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
                "$OCI_MANIFEST" "$hex" "$size" "$layer_digest" "$layer_size" >"$d/manifest-$tag.json"
        done
}

# check_codes FILE WHAT WANT: every line of FILE ("TAG CODE ...") must carry status WANT.
check_codes() {
    local bad
    bad=$(awk -v w="$3" '$2 != w' "$1" | head -n 3)
    [[ -z $bad ]] || die "$2: unexpected answers (tag, status): $bad"
}

# push_tags REGISTRY: the missing tags of bench/tags into REGISTRY, in three parallel phases: upload
# sessions (POST), blob uploads (PUT ?digest=), manifests (PUT by tag; the registry checks the blobs
# are there, hence last). The shared layer goes first, once, unless the registry has it.
push_tags() {
    local reg=$1 base d=$WORK/tags out=$WORK/tags-${1//[:.]/_} t0 t1 t2 t3 t4 i tag have missing=() location code
    base=http://$reg/v2/$TAGS_REPO
    mkdir -p "$out"
    t0=$(now)
    auth_header "$reg" "repository:$TAGS_REPO:pull,push" >"$out/auth.cfg"
    curl -sS --max-time 30 -K "$out/auth.cfg" -o "$out/tags.json" -w '%{http_code}' "$base/tags/list" >"$out/tags.code"
    case $(<"$out/tags.code") in
    200) jq -r '.tags // [] | .[]' "$out/tags.json" | sort >"$out/have" ;;
    404) : >"$out/have" ;;   # NAME_UNKNOWN: the repository does not exist yet
    *) die "$reg: GET $base/tags/list answered $(<"$out/tags.code")" ;;
    esac
    local -A present=()
    while read -r tag; do present[$tag]=1; done <"$out/have"
    for ((i = 0; i < TAG_COUNT; i++)); do
        printf -v tag 't%03d' "$i"
        [[ -n ${present[$tag]:-} ]] || missing+=("$tag")
    done
    have=$((TAG_COUNT - ${#missing[@]}))
    if ((${#missing[@]} == 0)); then
        say "$reg: $TAGS_REPO: all $TAG_COUNT tags there already, nothing pushed ($(since "$t0"))"
        return 0
    fi

    # The shared layer: one POST and one PUT, unless the repository has it.
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -K "$out/auth.cfg" -I "$base/blobs/$(<"$d/layer.digest")")
    if [[ $code != 200 ]]; then
        location=$(curl -sSf --max-time 10 -K "$out/auth.cfg" -d '' -o /dev/null -w '%header{location}' "$base/blobs/uploads/") \
            || die "$reg: starting the layer upload failed"
        [[ $location == http* ]] || location=http://$reg$location
        curl -sSf --max-time 30 -K "$out/auth.cfg" -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
            --data-binary "@$d/layer.tar.gz" "$location&digest=$(<"$d/layer.digest")" || die "$reg: layer upload failed"
    fi

    # Phase 1: one upload session per missing tag's config.
    t1=$(now)
    : >"$out/post.cfg"
    for tag in "${missing[@]}"; do
        printf 'next\nurl = "%s"\ndata = ""\noutput = "/dev/null"\nwrite-out = "%s %%{http_code} %%header{location}\\n"\n' \
            "$base/blobs/uploads/" "$tag" >>"$out/post.cfg"
        cat "$out/auth.cfg" >>"$out/post.cfg"
    done
    sed -i '1d' "$out/post.cfg"   # the leading "next"
    curl -sS --no-progress-meter --max-time 120 --parallel --parallel-max "$PARALLEL" -K "$out/post.cfg" >"$out/post.out"
    check_codes "$out/post.out" "$reg: upload sessions" 202

    # Phase 2: each config into its session.
    t2=$(now)
    : >"$out/put.cfg"
    while read -r tag code location; do
        [[ $location == http* ]] || location=http://$reg$location
        printf 'next\nurl = "%s&digest=%s"\nupload-file = "%s"\nheader = "Content-Type: application/octet-stream"\noutput = "/dev/null"\nwrite-out = "%s %%{http_code}\\n"\n' \
            "$location" "$(<"$d/config-$tag.digest")" "$d/config-$tag.json" "$tag" >>"$out/put.cfg"
        cat "$out/auth.cfg" >>"$out/put.cfg"
    done <"$out/post.out"
    sed -i '1d' "$out/put.cfg"
    curl -sS --no-progress-meter --max-time 120 --parallel --parallel-max "$PARALLEL" -K "$out/put.cfg" >"$out/put.out"
    check_codes "$out/put.out" "$reg: config uploads" 201

    # Phase 3: the manifests, by tag.
    t3=$(now)
    : >"$out/manifest.cfg"
    for tag in "${missing[@]}"; do
        printf 'next\nurl = "%s/manifests/%s"\nupload-file = "%s"\nheader = "Content-Type: %s"\noutput = "/dev/null"\nwrite-out = "%s %%{http_code}\\n"\n' \
            "$base" "$tag" "$d/manifest-$tag.json" "$OCI_MANIFEST" "$tag" >>"$out/manifest.cfg"
        cat "$out/auth.cfg" >>"$out/manifest.cfg"
    done
    sed -i '1d' "$out/manifest.cfg"
    curl -sS --no-progress-meter --max-time 120 --parallel --parallel-max "$PARALLEL" -K "$out/manifest.cfg" >"$out/manifest.out"
    check_codes "$out/manifest.out" "$reg: manifest PUTs" 201
    t4=$(now)

    # The registry must now list all of them.
    auth_header "$reg" "repository:$TAGS_REPO:pull" >"$out/auth.cfg"
    curl -sSf --max-time 30 -K "$out/auth.cfg" "$base/tags/list" | jq -e --argjson n "$TAG_COUNT" \
        '[.tags[] | select(test("^t[0-9]{3}$"))] | length == $n' >/dev/null || die "$reg: $TAGS_REPO does not list $TAG_COUNT tags"
    say "$reg: $TAGS_REPO: pushed ${#missing[@]} tags ($have there already) in $(since "$t0") (curl, $PARALLEL at once;" \
        "upload sessions $(span "$t1" "$t2"), config uploads $(span "$t2" "$t3"), manifests $(span "$t3" "$t4"))"
}

# --- bench/big: ~200 MB, 4 layers, with skopeo ------------------------------------------------------

# build_big: the OCI layout at $BIG_LAYOUT, tag v1, unless a complete one is there already.
build_big() {
    local t0 i work=$WORK/big out hex size diff_ids=() layers=() config_digest config_size manifest_digest manifest_size
    if [[ -f $BIG_LAYOUT/index.json ]] && skopeo inspect --raw "oci:$BIG_LAYOUT:v1" >/dev/null 2>&1 \
        && [[ -f $BIG_LAYOUT.complete ]]; then
        say "$BIG_LAYOUT: the layout is there already ($(du -sm "$BIG_LAYOUT" | cut -f1) MB), reused"
        return 0
    fi
    t0=$(now)
    rm -rf "$BIG_LAYOUT" "$BIG_LAYOUT.complete"
    mkdir -p "$BIG_LAYOUT/blobs/sha256" "$work"
    # The layers at once (gzip -1 of random data is CPU-bound: it takes what cores there are).
    for ((i = 1; i <= BIG_LAYERS; i++)); do
        (
            mkdir -p "$work/layer$i"
            head -c "$((BIG_LAYER_MIB * 1024 * 1024))" /dev/urandom >"$work/layer$i/random-$i.bin"
            tar --owner=0 --group=0 --numeric-owner -C "$work/layer$i" -cf "$work/layer$i.tar" "random-$i.bin"
            rm -rf "$work/layer$i"
            sha256sum <"$work/layer$i.tar" | cut -d' ' -f1 >"$work/layer$i.diff_id"
            gzip -1 -n <"$work/layer$i.tar" >"$work/layer$i.tar.gz"
            rm -f "$work/layer$i.tar"
        ) &
    done
    wait
    for ((i = 1; i <= BIG_LAYERS; i++)); do
        [[ -s $work/layer$i.diff_id && -s $work/layer$i.tar.gz ]] || die "building layer $i of $BIG_REPO failed"
        hex=$(sha256sum <"$work/layer$i.tar.gz" | cut -d' ' -f1)
        size=$(stat -c %s "$work/layer$i.tar.gz")
        mv "$work/layer$i.tar.gz" "$BIG_LAYOUT/blobs/sha256/$hex"
        diff_ids+=("\"sha256:$(<"$work/layer$i.diff_id")\"")
        layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$size}")
    done
    out=$(IFS=,; printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"org.regkeep.bench":"big"}},"rootfs":{"type":"layers","diff_ids":[%s]}}' "${diff_ids[*]}")
    printf '%s' "$out" >"$work/config.json"
    config_digest=sha256:$(sha256sum <"$work/config.json" | cut -d' ' -f1)
    config_size=$(stat -c %s "$work/config.json")
    mv "$work/config.json" "$BIG_LAYOUT/blobs/sha256/${config_digest#sha256:}"
    out=$(IFS=,; printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
        "$OCI_MANIFEST" "$config_digest" "$config_size" "${layers[*]}")
    printf '%s' "$out" >"$work/manifest.json"
    manifest_digest=sha256:$(sha256sum <"$work/manifest.json" | cut -d' ' -f1)
    manifest_size=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$BIG_LAYOUT/blobs/sha256/${manifest_digest#sha256:}"
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$BIG_LAYOUT/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
        "$OCI_MANIFEST" "$manifest_digest" "$manifest_size" >"$BIG_LAYOUT/index.json"
    touch "$BIG_LAYOUT.complete"   # a build cut short is never taken for a finished one
    say "$BIG_LAYOUT: built $BIG_LAYERS layers of ${BIG_LAYER_MIB} MiB random data, gzip -1: $(du -sm "$BIG_LAYOUT" | cut -f1) MB in $(since "$t0") ($manifest_digest)"
}

# push_big REGISTRY SKOPEO_DEST_FLAGS...: bench/big:v1 into REGISTRY, unless its manifest is there.
push_big() {
    local reg=$1 t0 code out=$WORK/big-${1//[:.]/_}
    shift
    mkdir -p "$out"
    t0=$(now)
    auth_header "$reg" "repository:$BIG_REPO:pull" >"$out/auth.cfg"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -K "$out/auth.cfg" -I -H "Accept: $OCI_MANIFEST" \
        "http://$reg/v2/$BIG_REPO/manifests/v1")
    if [[ $code == 200 ]]; then
        say "$reg: $BIG_REPO:v1 there already, not pushed ($(since "$t0"))"
        return 0
    fi
    timeout 600 skopeo --insecure-policy copy -q --dest-tls-verify=false "$@" "oci:$BIG_LAYOUT:v1" \
        "docker://$reg/$BIG_REPO:v1" </dev/null || die "skopeo copy of $BIG_REPO:v1 into $reg failed"
    say "$reg: $BIG_REPO:v1 pushed with skopeo in $(since "$t0")"
}

T0=$(now)
t=$(now)
build_tags
say "built $TAG_COUNT configs and manifests in $(since "$t")"
push_tags "$ANON"
push_tags "$BEARER"
build_big
push_big "$ANON" --dest-no-creds
push_big "$BEARER" --dest-authfile "$AUTH_FILE"
say "done in $(since "$T0")"
