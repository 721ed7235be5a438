# casebridge container image: a multi-stage build, a non-root runtime, SQLite
# in a volume by default (CASEBRIDGE_DATABASE_URL=postgres://… for PostgreSQL).
#
#   docker build --build-arg CASEBRIDGE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t casebridge .
#   docker run -p 8080:8080 -v casebridge:/var/lib/casebridge casebridge
#
# The operator token generated at first start is in the container's log
# (docker logs); set CASEBRIDGE_ADMIN_TOKEN to choose it. What of this is
# tested where: README, "Install and run".

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
# Where the runtime takes the binary from: the build stage below, or an
# image holding /usr/local/bin/casebridge built elsewhere (CI does this,
# scripts/check-container.sh).
ARG BINARY_FROM=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# .dockerignore keeps target/ and .git out; the commit comes as an argument.
COPY . .
ARG CASEBRIDGE_GIT_COMMIT=unknown
ENV CASEBRIDGE_GIT_COMMIT=${CASEBRIDGE_GIT_COMMIT}
RUN cargo build --release --locked -p casebridge \
    && install -m 0755 target/release/casebridge /usr/local/bin/casebridge

FROM ${BINARY_FROM} AS binary

FROM ${BASE_IMAGE} AS runtime
# ca-certificates: Creatio, the AI provider and the chat platform over TLS
# (rustls reads the system's roots).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/casebridge --shell /usr/sbin/nologin casebridge \
    && install -d -m 0700 -o casebridge -g casebridge /var/lib/casebridge
COPY --from=binary /usr/local/bin/casebridge /usr/bin/casebridge
USER 10001:10001
WORKDIR /var/lib/casebridge
ENV CASEBRIDGE_LISTEN=0.0.0.0:8080 \
    CASEBRIDGE_DATABASE_URL=sqlite:///var/lib/casebridge/casebridge.db \
    CASEBRIDGE_LOG_FORMAT=json
VOLUME ["/var/lib/casebridge"]
EXPOSE 8080
# casebridge finishes requests in flight and releases its claims on SIGTERM;
# give it the 30 s `docker stop -t 30` allows.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["casebridge", "ready"]
ENTRYPOINT ["casebridge"]
CMD ["serve"]
