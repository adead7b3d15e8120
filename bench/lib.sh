# shellcheck shell=bash
# Helpers shared by the proxy benchmarks (sourced, not run).

# nginx_conf DIR HTTP_BODY [WORKER_CONNECTIONS]: writes DIR/nginx.conf for one
# worker whose files (pid, logs, temp) all live under DIR.
nginx_conf() {
  local dir=$1 body=$2 conns=${3:-4096}
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $((conns + 1000));
pid $PWD/$dir/nginx.pid;
error_log $PWD/$dir/logs/error.log warn;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $PWD/$dir/tmp; proxy_temp_path $PWD/$dir/tmp;
  fastcgi_temp_path $PWD/$dir/tmp; uwsgi_temp_path $PWD/$dir/tmp; scgi_temp_path $PWD/$dir/tmp;
  $body
}
CONF
}

# proxy_toml FILE LISTEN ENDPOINTS [HEAD]: writes a lameduck proxy config with
# one listener ("web" on LISTEN) routing everything to one upstream ("app";
# ENDPOINTS is the inside of its TOML list). HEAD goes first, as it is: the
# [proxy] and [admin] tables a benchmark needs.
proxy_toml() {
  cat > "$1" <<CONF
${4:-}
[[listener]]
name = "web"
listen = "$2"
[[route]]
upstream = "app"
[[upstream]]
name = "app"
endpoints = [$3]
CONF
}

# nginx_stop DIR: stops the nginx whose files live under DIR, if it runs.
nginx_stop() {
  [ -f "$1/nginx.pid" ] && nginx -p "$PWD/$1" -c nginx.conf -s stop 2>/dev/null || true
}

# wait_port PORT: waits (10 s at most) until 127.0.0.1:PORT accepts connections.
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}

# apt_need CMD PACKAGE: installs the Debian PACKAGE if CMD is not on PATH
# (apt-get update first only if the plain install fails). Returns non-zero if
# it still is not there.
apt_need() {
  command -v "$1" >/dev/null && return 0
  echo "installing $2 (for $1)" >&2
  apt-get install -y -qq "$2" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$2" >/dev/null 2>&1; } || true
  command -v "$1" >/dev/null
}
