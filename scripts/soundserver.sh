#!/usr/bin/env bash
# A private PulseAudio sound server for testing live input without a sound card.
#
# It has one null sink, "vmic", whose monitor is the default source: whatever is played into the sink
# (`paplay --device=vmic clip.wav`) is what a recording client (sounddevice, parecord) hears.
#
# Usage:
#   scripts/soundserver.sh start [DIR]   install the packages if missing, start the daemon, print the env
#   scripts/soundserver.sh env [DIR]     print the env of a running daemon
#   scripts/soundserver.sh stop [DIR]    stop the daemon started in DIR (by its pid)
#
# DIR holds the daemon's private runtime and home folders and its pid file (default:
# ${TMPDIR:-/tmp}/speechrnn-soundserver). `start` and `env` print shell lines to eval:
#   export XDG_RUNTIME_DIR=DIR/runtime
#   export HOME=DIR/home
# Clients (the recorder and paplay) need both variables to find the daemon.
set -euo pipefail

PACKAGES=(pulseaudio pulseaudio-utils alsa-utils libasound2-plugins)
SINK=vmic
RATE=16000

say() { printf 'soundserver: %s\n' "$*" >&2; }
die() { printf 'soundserver: error: %s\n' "$*" >&2; exit 1; }

cmd=${1:-}
DIR=${2:-${TMPDIR:-/tmp}/speechrnn-soundserver}
RUNTIME=$DIR/runtime
HOMEDIR=$DIR/home
PIDFILE=$DIR/pid

print_env() {
    printf 'export XDG_RUNTIME_DIR=%q\n' "$RUNTIME"
    printf 'export HOME=%q\n' "$HOMEDIR"
}

running_pid() {
    # The pid recorded at start, if that process is still a pulseaudio daemon.
    [[ -f $PIDFILE ]] || return 1
    local pid
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == pulseaudio ]] || return 1
    echo "$pid"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_missing() {
    command -v dpkg-query >/dev/null 2>&1 || {
        command -v pulseaudio >/dev/null && command -v pactl >/dev/null && return 0
        die "pulseaudio and pactl are not installed and this is not a Debian system: install them by hand"
    }
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
            || die "missing ${missing[*]}, and not root nor passwordless sudo to install them"
        sudo=(sudo -n)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null 2>&1 \
        || { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
            && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null 2>&1; } \
        || die "could not install ${missing[*]} with apt-get"
}

start() {
    if pid=$(running_pid); then
        say "already running (pid $pid)"
        print_env
        return 0
    fi
    install_missing
    mkdir -p "$RUNTIME" "$HOMEDIR"
    chmod 700 "$DIR" "$RUNTIME" "$HOMEDIR"
    export XDG_RUNTIME_DIR=$RUNTIME HOME=$HOMEDIR
    local log=$DIR/pulseaudio.log
    # As root pulseaudio warns that it is meant for user sessions; in a private runtime folder it works.
    pulseaudio -D --exit-idle-time=-1 --disallow-exit --log-target="file:$log" >/dev/null 2>&1 \
        || die "pulseaudio did not start: $(tail -n 3 "$log" 2>/dev/null | tr '\n' ' ')"
    local i
    for ((i = 0; i < 50; i++)); do
        pactl info >/dev/null 2>&1 && break
        sleep 0.1
    done
    pactl info >/dev/null 2>&1 || die "pulseaudio started but does not answer: $(tail -n 3 "$log" | tr '\n' ' ')"
    local pid
    pid=$(<"$RUNTIME/pulse/pid") || die "pulseaudio wrote no pid file"
    echo "$pid" >"$PIDFILE"
    pactl load-module module-null-sink "sink_name=$SINK" "rate=$RATE" channels=1 >/dev/null \
        || { stop; die "could not create the null sink $SINK"; }
    pactl set-default-source "$SINK.monitor" || { stop; die "could not make $SINK.monitor the default source"; }
    say "started (pid $pid): play into --device=$SINK, record from the default source"
    print_env
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        say "not running"
        return 0
    fi
    kill "$pid"
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid ignored SIGTERM for 5 s: sending SIGKILL"
        kill -9 "$pid"
    fi
    rm -f "$PIDFILE"
    say "stopped (pid $pid)"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    env)
        running_pid >/dev/null || die "no daemon running for $DIR (run: $0 start $DIR)"
        print_env
        ;;
    *) die "usage: $0 start|env|stop [DIR]" ;;
esac
