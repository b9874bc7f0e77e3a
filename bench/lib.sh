# What the benchmark scripts share; sourced by each (`. bench/lib.sh`) from the repository root.

# need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing (as root), or says
# which package to install.
need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || {
  [ "$(id -u)" = 0 ] || { echo "$1 is missing (apt-get install $2)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }

# tree PID: PID and all its descendants, one per line.
tree() { local p=$1; echo "$p"; for c in $(pgrep -P "$p" || true); do tree "$c"; done; }

# ticks PID...: user + system CPU clock ticks of each process and its descendants ("-": none).
ticks() { local t=0 p q; for p in "$@"; do [ "$p" = - ] && continue; for q in $(tree "$p"); do
  t=$((t + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$q/stat" 2>/dev/null || echo 0))); done; done; echo "$t"; }

# stop: ends the one process in $PID, if any.
stop() { if [ -n "${PID:-}" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }

# stop_all: ends every process in the PIDS array.
stop_all() { for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
