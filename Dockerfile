# One image with every kombosync program; docker-compose.yml picks the command.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./worker ./starter ./cmd/webhookgw ./cmd/komboemu ./cmd/backoffice

# Alpine rather than distroless: compose health checks use its wget.
FROM alpine:3.22
RUN adduser -D -u 10001 kombosync
COPY --from=build /out/ /usr/local/bin/
USER kombosync
