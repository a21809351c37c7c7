#!/usr/bin/env bash
# Install what Datastore needs on a fresh Debian machine, idempotently:
# system packages (XRootD servers and clients, build deps of the official fts3 client's M2Crypto,
# Chromium and node for the web page's tests), promtool, uv, and the workspace virtualenv exactly
# as uv.lock says.
set -euo pipefail
cd "$(dirname "$0")/../.."
export UV_PYTHON="${UV_PYTHON:-python3.11}" UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"

packages=(xrootd-server xrootd-client swig libssl-dev openssl curl chromium nodejs)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool, to check deploy/monitoring's rules in the unit tests: taken out of Debian's
# prometheus package without installing it (that would start a Prometheus server).
if [[ ! -x var/tools/promtool ]]; then
  echo "setup: unpacking promtool from Debian's prometheus package"
  unpack=$(mktemp -d)
  (cd "$unpack" && { apt-get download prometheus >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
    dpkg-deb -x prometheus_*.deb root)
  mkdir -p var/tools
  install -m 0755 "$unpack/root/usr/bin/promtool" var/tools/promtool
  rm -rf "$unpack"
fi

uv=(uv)
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv"
  python3 -m pip install --quiet uv
  # A fresh console script may not be on PATH yet (pyenv shims, ~/.local/bin): run the module.
  uv=(python3 -m uv)
fi

"${uv[@]}" sync --locked --quiet
