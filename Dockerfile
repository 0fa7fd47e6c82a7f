# audit-ingest: a multi-stage build into a small runtime image.
#
# The builder and the runtime are both Debian 12 (bookworm), so the binary
# never needs a newer glibc than the runtime has (it needs 2.34; bookworm
# has 2.36). The binary links only libc, libm and libgcc_s, which the
# distroless `cc` image provides along with the CA certificates rustls
# loads from /etc/ssl/certs; SQLite is compiled in.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p app --bin audit-ingest \
 && install -D target/release/audit-ingest /out/audit-ingest \
 && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
# uid/gid 65532, the `nonroot` user of distroless images.
USER 65532:65532
COPY --from=builder /out/audit-ingest /usr/local/bin/audit-ingest
COPY --from=builder --chown=65532:65532 /out/data /data
WORKDIR /data
ENV AUDIT_STORE=sqlite:///data/audit.db \
    METRICS_ADDR=0.0.0.0:9464 \
    LOG_FORMAT=json
EXPOSE 9464
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/audit-ingest"]
CMD ["run"]
