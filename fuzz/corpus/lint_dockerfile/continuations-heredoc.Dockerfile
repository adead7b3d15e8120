# syntax=docker/dockerfile:1
FROM node:22 AS build
RUN npm ci \
    && npm run build
FROM gcr.io/distroless/nodejs22
COPY --from=build /app /app
COPY entrypoint.sh /usr/local/bin/
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/bin/sh", "-c", "node /app/server.js \"$@\"", "--"]
CMD [ "--port", "8080" ]
RUN <<EOT
  echo hi
EOT
