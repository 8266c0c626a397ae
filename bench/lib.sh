# shellcheck shell=bash
# Shell functions shared by the bench/ scripts; source it, do not run it.

# launch_worlddb BINARY DIR [daemon flags...]: starts BINARY on a free
# loopback port (port 0: the kernel picks), its data in DIR/data and its log
# in DIR/log, and waits until it listens. Sets $server_pid (also on failure,
# so the caller can stop it) and $port; returns 1, with the log on stderr,
# if the server exits or does not listen within 10 s.
launch_worlddb() {
  local bin=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  "$bin" --listen 127.0.0.1 --port 0 --data-dir "$dir/data" "$@" >"$dir/log" 2>&1 &
  server_pid=$!
  port=
  for _ in $(seq 200); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$dir/log" 2>/dev/null | sed 's/.*://' || true)
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$bin did not start:" >&2
  cat "$dir/log" >&2
  return 1
}
