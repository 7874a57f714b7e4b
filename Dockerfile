# syntax=docker/dockerfile:1
# runai-ldap-sync for people who build with Docker (or Buildah/Kaniko). Without a Docker
# engine, `make image` builds the same image (same paths, user, entrypoint) as an OCI
# archive with go-containerregistry; that is what the tests check. This file is not built
# in this repository's CI (no Docker engine there).
#
#   docker build --build-arg VERSION=v1.2.3 -t registry.example.com/runai-ldap-sync:v1.2.3 .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/runai-ldap-sync ./cmd/runai-ldap-sync
# A passwd/group naming the non-root user, as in `make image`.
RUN mkdir -p /out/etc && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group

# Static binary, CA bundle, non-root user: nothing else.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/runai-ldap-sync /usr/local/bin/runai-ldap-sync
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/runai-ldap-sync"]
CMD ["run", "--config", "/etc/runai-ldap-sync/config.yaml"]
