# syntax=docker/dockerfile:1
# runtime-grader: `docker compose up` serves the grader (see docs/deployment.md).
# The steps are the README's set-up steps: build the binary, install bubblewrap, fetch the exercise's
# crates. What `grader setup` prepares (toolchain copy, vendored crates, warm cache) is prepared by
# `grader serve` on its first start, into the data volume: the warm cache is built inside the sandbox,
# which `docker build` cannot run (docs/deployment.md).

# The toolchain that builds the grader is the one that grades: pin it in one place.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p grader

FROM rust:${RUST_VERSION}-slim-bookworm
# bubblewrap: the sandbox (started as the unprivileged uid 65534 by grader-sandbox-exec).
# curl: the healthcheck. sqlite3: online backups of the database.
# Versions are Debian stable's, fixed by the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap curl sqlite3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/grader /src/target/release/grader-sandbox-exec /usr/local/bin/
COPY hidden-tests /opt/runtime-grader/hidden-tests
# The crates every job builds against go into the image's cargo cache now, so that the first start
# vendors them without the network (CARGO_NET_OFFLINE below). The workspace is laid out as the grader
# assembles it for a job (grader/assembly/Cargo.toml): the student's crate as runtime/, the hidden tests.
COPY grader/assembly/Cargo.toml grader/assembly/Cargo.lock /tmp/assembly/
COPY exercise-template/Cargo.toml /tmp/assembly/runtime/
COPY hidden-tests/Cargo.toml /tmp/assembly/hidden-tests/
RUN mkdir /tmp/assembly/runtime/src /tmp/assembly/hidden-tests/src \
    && touch /tmp/assembly/runtime/src/lib.rs /tmp/assembly/hidden-tests/src/lib.rs \
    && cargo fetch --locked --manifest-path /tmp/assembly/Cargo.toml \
    && rm -rf /tmp/assembly
ENV CARGO_NET_OFFLINE=true \
    GRADER_DATA_DIR=/var/lib/runtime-grader \
    GRADER_HIDDEN_TESTS=/opt/runtime-grader/hidden-tests \
    GRADER_BIND=0.0.0.0:8080 \
    RUST_LOG=info
VOLUME ["/var/lib/runtime-grader"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["grader"]
CMD ["serve"]
