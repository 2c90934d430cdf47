# wharf in a container: `docker build -t wharf .` then
#   docker run -p 8000:8000 -v wharf-data:/data wharf
# Data (SQLite, files, the server key) lives in the /data volume; settings come from
# WHARF_* variables or a config file (--config, see deploy/wharf.toml).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends git pkg-config && rm -rf /var/lib/apt/lists/*
COPY . .
# The commit `wharf --version` shows, when the build context has no .git.
ARG WHARF_COMMIT=""
ENV WHARF_COMMIT=${WHARF_COMMIT}
RUN cargo build --release --locked --bin wharf && strip target/release/wharf

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin wharf \
    && mkdir /data && chown wharf:wharf /data
COPY --from=build /src/target/release/wharf /usr/local/bin/wharf
USER wharf
VOLUME /data
EXPOSE 8000
ENV WHARF_DATA_DIR=/data WHARF_BIND=0.0.0.0:8000 RUST_LOG=info
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8000/_health || exit 1
ENTRYPOINT ["/usr/local/bin/wharf"]
CMD ["serve"]
