# Billy in a container, for users with Docker (docker compose up). Not used by make run/test.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/billy ./cmd/billy

FROM debian:bookworm-slim
# ffmpeg decodes audio other than WAV (Ogg, MP3, M4A, WebM) for the pipeline.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates ffmpeg && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown 65532:65532 /data
COPY --from=build /out/billy /usr/local/bin/billy
COPY scripts/docker-entrypoint.sh /usr/local/bin/billy-entrypoint
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["billy-entrypoint"]
CMD ["serve"]
