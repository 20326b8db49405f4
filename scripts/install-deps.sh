#!/usr/bin/env bash
# Installs what regkeep's tests need beyond the Rust toolchain: the peer programs from Debian
# (see shared TEST-PEERS.md) and two Python venvs under $REPO/.cache/.
#
# Idempotent and fast when everything is already there: packages are checked with one dpkg-query
# (apt-get update runs only when something is missing), and each venv has a marker file holding the
# exact spec it was built from, so a rerun skips it unless the spec below changed.
#
#   .cache/venv-anchore  anchorecli 0.9.3 (Anchore's CLI, the API-compatibility client). Its own venv:
#                        its Click pin clashes with moto's Flask.
#   .cache/venv-peers    PyJWT + cryptography (fixtures/token_server.py), prometheus_client (its text
#                        parser checks /metrics) and moto[server] + boto3 (moto,
#                        fixtures/seed_aws.py, imds.py, check_aws.py; ecr_api.py needs only the stdlib),
#                        schemathesis (fuzzes the API from its OpenAPI document: tests/peers/contract.rs).
#
# Usage: scripts/install-deps.sh        (as root; CI=true and no stdin are fine)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$REPO/.cache

APT_PACKAGES=(docker-registry apache2-utils skopeo umoci postgresql openssl python3-venv wrk iproute2 curl jq systemd)

# Debian's python3, not whatever python3 is first on PATH (pyenv here): python3-venv belongs to it.
PYTHON=/usr/bin/python3

# Changing a spec rebuilds that venv on the next run (the marker holds the spec).
ANCHORE_SPEC='PyYAML==5.4.1 (cython<3) anchorecli==0.9.3'
PEERS_PKGS=(PyJWT==2.15.1 cryptography==50.0.2 'moto[server]==5.2.5' boto3==1.44.8 prometheus_client==0.21.1
    schemathesis==4.32.5)
PEERS_SPEC="${PEERS_PKGS[*]}"

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

mkdir -p "$CACHE"
# Two runs at once (two terminals, or CI plus a developer) would race on apt and on the venvs.
exec 9>"$CACHE/install-deps.lock"
timeout 900 flock 9 || die "another install-deps.sh still holds $CACHE/install-deps.lock after 15 min"

# --- Debian packages --------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing Debian packages (${missing[*]}); run this script as root"
    say "apt: installing ${missing[*]}"
    timeout 600 apt-get update -qq </dev/null || die "apt-get update failed"
    timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >"$CACHE/apt.log" 2>&1 \
        || { tail -n 30 "$CACHE/apt.log" >&2; die "apt-get install failed (full log: $CACHE/apt.log)"; }
else
    say "apt: all ${#APT_PACKAGES[@]} packages present"
fi

# --- Python venvs -----------------------------------------------------------------------------
# venv_ready DIR SPEC: true when DIR was built from exactly SPEC.
venv_ready() { [[ -x $1/bin/python && -f $1/.regkeep-installed && $(<"$1/.regkeep-installed") == "$2" ]]; }

new_venv() {
    rm -rf "$1"
    timeout 120 "$PYTHON" -m venv "$1" || die "could not create venv $1 (is python3-venv installed?)"
}

pip_in() { # pip_in VENV ARGS... ; bounded, quiet, with the output kept for a failure report
    local venv=$1; shift
    timeout 900 "$venv/bin/pip" install -q "$@" </dev/null >"$venv/pip.log" 2>&1 \
        || { tail -n 30 "$venv/pip.log" >&2; die "pip install $* failed (full log: $venv/pip.log)"; }
}

VA=$CACHE/venv-anchore
if venv_ready "$VA" "$ANCHORE_SPEC"; then
    say "venv-anchore: ready"
else
    say "venv-anchore: installing anchorecli 0.9.3"
    new_venv "$VA"
    # PyYAML 5.4.1 (anchorecli's pin) builds from source and breaks with Cython 3: constrain the
    # build environment to cython<3, and install it first on its own so the constraint only
    # applies to that build.
    echo 'cython<3' >"$VA/constraints.txt"
    PIP_CONSTRAINT=$VA/constraints.txt pip_in "$VA" PyYAML==5.4.1
    pip_in "$VA" anchorecli==0.9.3
    timeout 60 "$VA/bin/anchore-cli" --version >/dev/null || die "anchore-cli --version failed after install"
    printf '%s' "$ANCHORE_SPEC" >"$VA/.regkeep-installed"
fi

VP=$CACHE/venv-peers
if venv_ready "$VP" "$PEERS_SPEC"; then
    say "venv-peers: ready"
else
    say "venv-peers: installing $PEERS_SPEC"
    new_venv "$VP"
    pip_in "$VP" "${PEERS_PKGS[@]}"
    timeout 60 "$VP/bin/python" -c 'import jwt, cryptography, moto, boto3, schemathesis' || die "venv-peers imports failed after install"
    printf '%s' "$PEERS_SPEC" >"$VP/.regkeep-installed"
fi

say "done"
