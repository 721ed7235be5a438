#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg on this machine (as CI
# does; run as root), and checks what was installed:
#   - the installed binary's --version and `config` with the packaged file;
#   - the systemd unit with `systemd-analyze verify`;
#   - the packaged configuration serving: the installed binary started with
#     the unit's command line and working directory answers /readyz with
#     its database in /var/lib/casebridge.
# Where systemd is not PID 1 (CI containers) the unit is verified but not
# started: the last check runs the same command as root without systemd's
# sandbox, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --version 3.8.0
fi

cargo deb -p casebridge
deb=$(ls -t target/debian/casebridge_*.deb | head -1)
echo "built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Depends:/p'

DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

echo "== installed: /usr/bin/casebridge --version"
/usr/bin/casebridge --version
expected="casebridge $(sed -n 's/^version = "\(.*\)"/\1/p' crates/casebridge/Cargo.toml | head -1)"
if git rev-parse HEAD >/dev/null 2>&1; then
    expected="$expected (commit $(git rev-parse --short=12 HEAD))"
fi
grep -qF "$expected" <<<"$(/usr/bin/casebridge --version)" || { echo "expected $expected"; exit 1; }

echo "== installed: casebridge config --config /etc/casebridge/casebridge.toml"
config=$(CASEBRIDGE_ADMIN_TOKEN=package-check-operator-token /usr/bin/casebridge config --config /etc/casebridge/casebridge.toml)
echo "$config"
grep -q 'CASEBRIDGE_DATABASE_URL .*sqlite:///var/lib/casebridge/casebridge.db  \[file' <<<"$config"
grep -q 'CASEBRIDGE_ADMIN_TOKEN .*(set, hidden)  \[env\]' <<<"$config"
if grep -q package-check-operator-token <<<"$config"; then
    echo "config printed the operator token"; exit 1
fi

echo "== systemd-analyze verify casebridge.service"
if command -v systemd-analyze >/dev/null; then
    # Verifies the unit's syntax, its ExecStart binary and its [Install]
    # section; it does not need systemd to be running.
    systemd-analyze verify /usr/lib/systemd/system/casebridge.service
    echo "unit verified"
else
    echo "systemd-analyze is not installed: unit not verified"
fi

echo "== the packaged configuration serves from /var/lib/casebridge"
if [ -d /run/systemd/system ]; then
    echo "(systemd runs here, but CI does not start units on the machine; the same command follows)"
fi
mkdir -p /var/lib/casebridge
chmod 0700 /var/lib/casebridge
log=$(mktemp)
(cd /var/lib/casebridge && CASEBRIDGE_LISTEN=127.0.0.1:0 exec /usr/bin/casebridge serve --config /etc/casebridge/casebridge.toml) >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 100); do
    addr=$(sed -n 's/^casebridge listening on \([^ ]*\).*/\1/p' "$log")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "the installed service did not start"; exit 1; }
curl -fsS "http://$addr/readyz"
echo
test -f /var/lib/casebridge/casebridge.db
test "$(stat -c %a /var/lib/casebridge/casebridge.key)" = 600
kill -TERM $pid
wait $pid
echo "the installed service answered /readyz from http://$addr, kept its database and key in /var/lib/casebridge, and stopped on SIGTERM"
