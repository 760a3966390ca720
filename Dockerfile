# Billy in a container, for users with Docker (docker compose up). Not used by make run/test.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/billy ./cmd/billy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/billy /usr/local/bin/billy
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["billy"]
CMD ["serve"]
