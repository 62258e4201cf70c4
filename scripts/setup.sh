#!/usr/bin/env bash
# Install everything speechrnn needs on a Debian machine: system packages, then a virtual environment
# with the package installed editable. Safe to re-run: each step is skipped when its result is already there.
#
# Environment:
#   SPEECHRNN_VENV  where the virtual environment lives (default: .venv in the repository)
#   PYTHON          interpreter to build it with (default: the first python3 >= 3.11 found on PATH)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=${SPEECHRNN_VENV:-.venv}
START=$SECONDS

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- system packages ---------------------------------------------------------------------------------
# libportaudio2: sounddevice (microphone); the synthesisers and voices: `speechrnn synth`;
# sox: audio conversion and checks; pulseaudio and ALSA: a sound server for the live tests; chromium: the
# browser that tests `speechrnn serve`'s page (driven by Playwright, so no browser download).
APT_PACKAGES=(
    libportaudio2 espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
    festvox-italp16k festvox-itapc16k festival-czech festvox-czech-dita festvox-czech-machac festvox-czech-ph
    festvox-czech-krb festvox-suopuhe-lj festvox-suopuhe-mv
    pulseaudio libasound2-plugins alsa-utils pulseaudio-utils chromium
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing_of() {  # sets `missing` to those of the packages given that are not installed
    missing=()
    local pkg
    for pkg in "$@"; do
        installed "$pkg" || missing+=("$pkg")
    done
}
as_root() {  # run a command as root: directly when we are root, else through sudo
    if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            "$candidate" -c 'import sys; print(sys.executable)'  # past any pyenv-style shim
            return 0
        fi
    done
    return 1
}

PY=$(find_python) || die "need python3 >= 3.11 (set PYTHON=/path/to/python3.11 if it is not on PATH)"

# Debian's own python3 builds venvs only with its python3-venv package.
if [[ ! -x "$VENV/bin/python" ]] && ! "$PY" -c 'import ensurepip' 2>/dev/null; then
    APT_PACKAGES+=("python3-venv")
fi

missing_of "${APT_PACKAGES[@]}"
if ((${#missing[@]})); then
    ((EUID == 0)) || command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${missing[*]} by hand"
    say "apt: installing ${missing[*]}"
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "apt: all ${#APT_PACKAGES[@]} packages present"
fi

# --- more voices from Debian's contrib and non-free components ---------------------------------------
# Festival's British men Rab and Don (contrib), MBROLA's diphone voices (free for non-commercial use), SVOX
# Pico (Apache 2.0, in non-free for want of its voice data's sources) and RHVoice's voices (in
# non-free for the same reason). `speechrnn synth` runs without them, with fewer people in the corpus; the
# shipped model was trained with them. SPEECHRNN_NONFREE=0 skips this step.
NONFREE_PACKAGES=(festvox-rablpc16k festvox-don festvox-ellpc11k mbrola libttspico-utils mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
    mbrola-af1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4 mbrola-gr2
    mbrola-hu1 mbrola-nl2 mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2 mbrola-fr2 mbrola-fr3 mbrola-fr5 mbrola-fr6
    mbrola-fr7 mbrola-de7 mbrola-nl3 mbrola-gr1 mbrola-es1 mbrola-es2 mbrola-es3 mbrola-mx1 mbrola-mx2 mbrola-it3
    mbrola-it4 mbrola-pt1 mbrola-ca1 mbrola-ca2 mbrola-cz1 mbrola-cz2 mbrola-tr1 mbrola-tr2 mbrola-lt1 mbrola-lt2
    mbrola-cr1 mbrola-br1 mbrola-br2 mbrola-br3 mbrola-br4 mbrola-es4 mbrola-vz1 rhvoice rhvoice-english
    rhvoice-russian rhvoice-ukrainian rhvoice-kyrgyz rhvoice-tatar rhvoice-macedonian rhvoice-polish
    rhvoice-esperanto rhvoice-albanian)
missing_of "${NONFREE_PACKAGES[@]}"
if [[ ${SPEECHRNN_NONFREE:-1} == 0 ]]; then
    say "apt: SPEECHRNN_NONFREE=0, not installing ${NONFREE_PACKAGES[*]}"
elif ((${#missing[@]})); then
    unknown=0  # a package apt has no candidate for: the components are not enabled yet
    for pkg in "${missing[@]}"; do
        apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]' || unknown=1
    done
    if ((unknown)); then
        . /etc/os-release
        if [[ ${ID:-} == debian && -n ${VERSION_CODENAME:-} ]]; then
            say "apt: enabling Debian's contrib and non-free components for ${VERSION_CODENAME}"
            printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: ${VERSION_CODENAME}" \
                "Components: contrib non-free" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
                | as_root tee /etc/apt/sources.list.d/speechrnn-nonfree.sources >/dev/null
            apt_get update -qq
        fi
    fi
    say "apt: installing ${missing[*]}"
    if ! apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        say "warning: could not install ${missing[*]}; speechrnn synth will run without them"
    fi
else
    say "apt: all ${#NONFREE_PACKAGES[@]} contrib/non-free voice packages present"
fi

# --- virtual environment -----------------------------------------------------------------------------
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    say "venv: $VENV exists"
else
    # --clear: an interrupted earlier attempt may have left a venv without pip.
    say "venv: creating $VENV with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
    "$PY" -m venv --clear "$VENV"
fi

# The install is current when pyproject.toml, the interpreter and the checkout it points at are unchanged
# and the package is still importable as installed metadata.
STAMP="$VENV/.speechrnn-install"
key=$( {
    sha256sum pyproject.toml
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
    echo "$ROOT"
} | sha256sum | cut -d' ' -f1)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$key" ]] \
    && "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("speechrnn")' 2>/dev/null; then
    say "pip: speechrnn already installed for this pyproject.toml"
else
    say "pip: installing speechrnn with extras dev,synth,deploy,serve (torch is large: a few minutes on a new venv)"
    rm -f "$STAMP"
    # pip and the build backend are chatty even when quiet: keep their words for when something fails.
    log="$VENV/pip-install.log"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        -e "${ROOT}[dev,synth,deploy,serve]" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "pip install failed (full log: $log)"
    fi
    echo "$key" >"$STAMP"
fi

say "ready in $((SECONDS - START)) s ($VENV/bin/speechrnn)"
