#!/usr/bin/env bash
# Make sure redis-server, redis-cli and memcached are on PATH for the server tests.
#
# Installs the Debian packages (redis-server redis-tools memcached) when something is missing and
# we may use apt-get (root, or passwordless sudo).  The tests start their own servers on free
# ports, so the system daemons the packages start on 6379/11211 are stopped again.
#
# That is all the TLS, cluster and sentinel fixtures need too: Debian's redis is built with TLS,
# redis-cli (redis-tools) runs `--cluster create`, and sentinels run as `redis-server <conf>
# --sentinel`.  The separate redis-sentinel package is deliberately not installed: it only adds a
# system sentinel daemon on port 26379, which the tests do not use.
#
# If the binaries cannot be had: with CI=true this fails (a CI run must not skip the server tests
# silently); otherwise it warns that the server tests will be skipped and exits 0.
#
# Idempotent, and does nothing slow when everything is already installed.
set -euo pipefail

readonly BINARIES=(redis-server redis-cli memcached)
readonly PACKAGES=(redis-server redis-tools memcached)

missing_binaries() {
    local name
    for name in "${BINARIES[@]}"; do
        command -v "$name" >/dev/null 2>&1 || printf '%s\n' "$name"
    done
}

# Pids of running daemons of that name, one per line (empty when none).
daemon_pids() {
    pgrep -x "$1" 2>/dev/null || true
}

# Stop a daemon that the package install started ($1 = service, $2 = process name, $3 = pids that
# were running before the install: those are somebody else's and are left alone).
stop_new_daemon() {
    local service=$1 process=$2 before=$3 pid
    local new=()
    for pid in $(daemon_pids "$process"); do
        grep -qx "$pid" <<<"$before" || new+=("$pid")
    done
    ((${#new[@]})) || return 0
    echo "install_servers: stopping the $service daemon the package install started" >&2
    "${SUDO[@]}" service "$service" stop >/dev/null 2>&1 || true
    # Keep it from coming back at boot; only meaningful when systemd is the init system.
    if [[ -d /run/systemd/system ]]; then
        "${SUDO[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
    # Without a working init system `service` may do nothing: signal the new pids directly.
    for pid in "${new[@]}"; do
        "${SUDO[@]}" kill "$pid" 2>/dev/null || true
    done
}

versions_line() {
    local redis_v cli_v mc_v
    redis_v=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p' || true)
    cli_v=$(redis-cli --version 2>/dev/null | awk '{print $2}' || true)
    mc_v=$(memcached -V 2>/dev/null | awk '{print $2}' || true)
    echo "install_servers: redis-server ${redis_v:-missing}, redis-cli ${cli_v:-missing}, memcached ${mc_v:-missing}"
}

mapfile -t missing < <(missing_binaries)
reason=""

if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            SUDO=(sudo -n)
        else
            reason="not root and no passwordless sudo, so cannot run apt-get"
        fi
    fi
    if [[ -z $reason ]] && ! command -v apt-get >/dev/null 2>&1; then
        reason="apt-get is not available on this machine"
    fi

    if [[ -z $reason ]]; then
        echo "install_servers: installing ${PACKAGES[*]} (missing: ${missing[*]})" >&2
        redis_before=$(daemon_pids redis-server)
        memcached_before=$(daemon_pids memcached)
        log=$(mktemp)
        trap 'rm -f "$log"' EXIT
        # Quiet on success; the full apt output is shown when a step fails.
        if ! "${SUDO[@]}" apt-get update -qq >"$log" 2>&1; then
            cat "$log" >&2
            reason="apt-get update failed"
        elif ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1; then
            cat "$log" >&2
            reason="apt-get install ${PACKAGES[*]} failed"
        fi
        # Even after a failed install a daemon may have been started.
        stop_new_daemon redis-server redis-server "$redis_before"
        stop_new_daemon memcached memcached "$memcached_before"
        mapfile -t missing < <(missing_binaries)
        if ((${#missing[@]})) && [[ -z $reason ]]; then
            reason="apt-get install succeeded but they are still not on PATH ($PATH)"
        fi
    fi
fi

if ((${#missing[@]})); then
    if [[ ${CI:-} == true ]]; then
        echo "install_servers: ERROR: missing ${missing[*]}: $reason" >&2
        exit 1
    fi
    echo "install_servers: WARNING: missing ${missing[*]} ($reason); the server tests will be skipped" >&2
fi

# Headless Chromium for the dashboard test (tests/server/test_admin_dashboard.py): Debian's
# chromium package, installed when missing and apt is usable. A machine that cannot install it
# only warns (the test is then skipped); with CI=true, a failed install where apt IS usable is an
# error. scripts/test.sh makes the test demand the browser (STRATACACHE_REQUIRE_BROWSER=1)
# whenever it is on PATH after this script, so a browser that is there is always used.
if ! command -v chromium >/dev/null 2>&1; then
    browser_reason=""
    BROWSER_SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            BROWSER_SUDO=(sudo -n)
        else
            browser_reason="not root and no passwordless sudo, so cannot run apt-get"
        fi
    fi
    if [[ -z $browser_reason ]] && ! command -v apt-get >/dev/null 2>&1; then
        browser_reason="apt-get is not available on this machine"
    fi
    apt_usable=$([[ -z $browser_reason ]] && echo yes || echo no)
    if [[ -z $browser_reason ]]; then
        echo "install_servers: installing chromium (for the dashboard test)" >&2
        browser_log=$(mktemp)
        install_chromium() {
            "${BROWSER_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends chromium >>"$browser_log" 2>&1
        }
        # The package lists may be stale: update once if the first try fails.
        if ! install_chromium && ! { "${BROWSER_SUDO[@]}" apt-get update -qq >>"$browser_log" 2>&1 && install_chromium; }; then
            cat "$browser_log" >&2
            browser_reason="apt-get install chromium failed"
        fi
        rm -f "$browser_log"
        if [[ -z $browser_reason ]] && ! command -v chromium >/dev/null 2>&1; then
            browser_reason="apt-get install chromium succeeded but chromium is not on PATH ($PATH)"
        fi
    fi
    if [[ -n $browser_reason ]]; then
        if [[ ${CI:-} == true && $apt_usable == yes ]]; then
            echo "install_servers: ERROR: no chromium: $browser_reason" >&2
            exit 1
        fi
        echo "install_servers: WARNING: no chromium ($browser_reason); the dashboard browser test will be skipped" >&2
    fi
fi

versions_line
chromium_v=$(chromium --version 2>/dev/null | awk '{print $2}' || true)
echo "install_servers: chromium ${chromium_v:-missing}"
