# The sumdb image: a static binary on a distroless base (CA certificates,
# no shell), run as a non-root user, with the data directory (embedded
# store, signer key, ACME cache, published head) as a volume.
#
#   docker build -t sumdb .
#   docker run -v sumdb-data:/data -p 8080:8080 -e SUMDB_NAME=sum.example.com \
#     -e SUMDB_UPSTREAM="$(go env GOPROXY)" -e SUMDB_PUBLIC_SUMDB="$(go env GOSUMDB)" -e SUMDB_PRIVATE=off sumdb
#
# Every setting is a SUMDB_* variable (see the configuration reference in
# docs/operating.md): the image sets only the address and the data
# directory; the upstream, the public checksum database and the private
# paths must be given, since there is no go command to ask for GOPROXY,
# GOSUMDB and GONOSUMDB. Private modules need SUMDB_PRIVATE_UPSTREAM, an
# internal proxy: there is no go command to fetch them from version control.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# No cgo (the embedded store is pure Go), so the binary needs no libc.
RUN CGO_ENABLED=0 go build -trimpath -o /out/sumdb ./cmd/sumdb
# A named volume takes the owner and mode of the directory it is mounted on.
RUN mkdir -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sumdb /usr/local/bin/sumdb
COPY --from=build --chown=65532:65532 /out/data /data
# Settings as variables rather than flags in CMD: a flag would win over
# the variables and the config file an operator sets. The image has no go
# command to take the upstream from: give it as SUMDB_UPSTREAM, a GOPROXY
# list such as your own go env GOPROXY.
ENV SUMDB_LISTEN=0.0.0.0:8080 \
    SUMDB_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sumdb"]
CMD ["serve"]
