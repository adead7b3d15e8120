# Expected: LD008 (nginx installed on Debian: the stop signal stays SIGTERM;
# fixable by adding STOPSIGNAL SIGQUIT).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*
COPY nginx.conf /etc/nginx/nginx.conf
CMD ["nginx", "-g", "daemon off;"]
