#!/usr/bin/env bash
# Builds the casebridge image with podman and runs it (CI, as root).
#
# No image registry is reachable here, so:
#   - the base image is Debian bookworm built locally with debootstrap from
#     Debian's packages (minbase; the Dockerfile's default is
#     debian:bookworm-slim, the same release);
#   - the Dockerfile's Rust build stage is not run: no Rust image can be
#     pulled, and Debian's own rustc (1.85 in trixie) is older than the
#     dependencies need (rust-version 1.89). The runtime stage takes the
#     binary `cargo build --release` made on this machine instead
#     (BINARY_FROM), and everything else in it is the Dockerfile's own.
#   - deploy/compose.yaml is not run (its postgres and nginx images cannot
#     be pulled); podman-compose parses and resolves it.
#
# This machine's sandbox refuses crun's setrlimit and its cgroup setup, so
# containers run with runc and explicit ulimits.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
podman() { command podman --runtime runc "$@"; }
limits=(--ulimit nofile=8192:8192 --ulimit nproc=4096:4096)

base=localhost/debian:bookworm-slim
if ! podman image exists "$base"; then
    rootfs=$(mktemp -d)
    echo "== debootstrap bookworm (minbase) for $base"
    debootstrap --variant=minbase --include=passwd bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -c . | podman import -q - "$base"
    rm -rf "$rootfs"
fi

echo "== the binary (cargo build --release) as an image for BINARY_FROM"
cargo build --release -p casebridge
ctx=$(mktemp -d)
cp target/release/casebridge "$ctx/casebridge"
printf 'FROM scratch\nCOPY casebridge /usr/local/bin/casebridge\n' >"$ctx/Containerfile"
podman build -q "${limits[@]}" -t localhost/casebridge-binary:ci "$ctx" >/dev/null
rm -rf "$ctx"

echo "== podman build (the Dockerfile's runtime stage)"
# --format docker: the OCI image format has no HEALTHCHECK.
podman build "${limits[@]}" --network host --format docker \
    --build-arg BASE_IMAGE="$base" \
    --build-arg BINARY_FROM=localhost/casebridge-binary:ci \
    -t localhost/casebridge:ci .

inspect() { podman image inspect localhost/casebridge:ci --format "$1"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || { echo "the image does not run as 10001"; exit 1; }
[ "$(inspect '{{.Config.StopSignal}}')" = "SIGTERM" ] || { echo "STOPSIGNAL is not SIGTERM"; exit 1; }
grep -q /var/lib/casebridge <<<"$(inspect '{{json .Config.Volumes}}')" || { echo "no volume at /var/lib/casebridge"; exit 1; }
grep -q '"casebridge","ready"' <<<"$(inspect '{{json .Config.Healthcheck}}')" || { echo "no HEALTHCHECK"; exit 1; }
echo "user 10001, STOPSIGNAL SIGTERM, volume /var/lib/casebridge, HEALTHCHECK casebridge ready"

echo "== podman run: /readyz through a published port, the HEALTHCHECK, SIGTERM"
name=casebridge-ci-$$
volume=casebridge-ci-$$
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman run -d --name "$name" "${limits[@]}" -p "127.0.0.1:$port:8080" \
    -v "$volume:/var/lib/casebridge" localhost/casebridge:ci >/dev/null
ok=""
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ -n "$ok" ] || { podman logs "$name"; echo "the container did not answer /readyz"; exit 1; }
curl -fsS "http://127.0.0.1:$port/readyz"; echo
# The HEALTHCHECK command (casebridge ready) inside the container.
podman healthcheck run "$name"
echo "HEALTHCHECK passes"
[ "$(podman exec "$name" id -u)" = 10001 ]
podman exec "$name" test -f /var/lib/casebridge/casebridge.db
# JSON log mode: the generated operator token is a JSON line of its own.
# (Read whole first: grep -q stopping early would fail the pipe.)
logs=$(podman logs "$name" 2>/dev/null)
grep -q '"operator_token":"cba_' <<<"$logs" || { echo "$logs"; echo "no operator token line"; exit 1; }
podman stop -t 30 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { podman logs "$name"; echo "exit code $code after SIGTERM"; exit 1; }
echo "the container served /readyz on port $port, passed its HEALTHCHECK as uid 10001, kept its database in the volume and exited 0 on SIGTERM"

echo "== deploy/compose.yaml resolves (podman-compose config)"
python3 -m pip install -q podman-compose==1.6.0
(
    cd deploy
    POSTGRES_PASSWORD=ci CASEBRIDGE_SECRET_KEY=ci CASEBRIDGE_ADMIN_TOKEN=ci-operator-token \
        python3 -m podman_compose -f compose.yaml config >/tmp/compose-resolved.yaml
)
grep -q 'replicas: 2' /tmp/compose-resolved.yaml
grep -q 'condition: service_healthy' /tmp/compose-resolved.yaml
echo "compose.yaml resolves: postgres, two casebridge replicas, one nginx port"
