# shellcheck shell=bash
# scripts/test-env.sh: the environment the tests need. Source it, do not run it:
#
#   scripts/test                     what the README and .ci/run run; sources this file
#   source scripts/test-env.sh       in a developer's bash, before `cargo test`
#   kinsight_test_env_stop           when done (scripts/test traps it on EXIT)
#
# It works under the caller's `set -euo pipefail` and in an interactive shell: it sets no shell
# options, never exits, and returns non-zero (after saying why) when a step fails. Installs are
# skipped when already done, so a second run takes about a second. Sourcing it again in the same
# shell first stops what the previous sourcing started.
#
# One function per step; a new tier adds a line or two to the step it needs:
#   1. _ks_env_debs      Debian packages: containerd runc busybox-static, kubectl if absent
#                        (as root)
#   2. _ks_env_venvs     Python tools, one venv each under .venv/ (git-ignored):
#                        moto; later ministack + cbor2 in a venv of its own
#   3. _ks_env_services  scratch directory, then background services: containerd (as root)
#   4. _ks_env_exports   KINSIGHT_TEST_* for the tests
#
# moto is not started here: each test starts its own moto_server on a free port
# (tests/support, `Moto::start`), so tests never share AWS state.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "scripts/test-env.sh: source it from bash" >&2
  return 1 2>/dev/null || exit 1
fi

# Sourced again in the same shell: stop what the last sourcing started.
if declare -F kinsight_test_env_stop >/dev/null; then kinsight_test_env_stop; fi

KINSIGHT_TEST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
KINSIGHT_TEST_PYTHON=${KINSIGHT_TEST_PYTHON:-python3}
KINSIGHT_TEST_PIDS=()
_ks_apt_updated=

_ks_say() { printf 'kinsight test env: %s\n' "$*" >&2; }

# _ks_apt_install PKG…: install the Debian packages that are not installed yet.
_ks_apt_install() {
  local p missing=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    _ks_say "missing Debian packages: ${missing[*]}; run as root, or install them"
    return 1
  fi
  _ks_say "installing Debian packages: ${missing[*]} …"
  if [ -z "$_ks_apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null ||
      { _ks_say "apt-get update failed"; return 1; }
    _ks_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null ||
    { _ks_say "apt-get install ${missing[*]} failed"; return 1; }
}

# _ks_venv NAME CHECK REQUIREMENT…: .venv/NAME holding exactly REQUIREMENT…, proven by
# `CHECK DIR`. A stamp file records what was installed; when it matches and CHECK passes, pip is
# not called. Anything else (new pins, a venv whose Python went away) rebuilds the venv.
_ks_venv() {
  local name=$1 check=$2
  shift 2
  local dir="$KINSIGHT_TEST_ROOT/.venv/$name" want="$*"
  local stamp="$dir/.kinsight-installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$check" "$dir" >/dev/null 2>&1; then
    return 0
  fi
  if ! "$KINSIGHT_TEST_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    _ks_apt_install python3-venv || return 1   # Debian's python3 ships venv without ensurepip
  fi
  _ks_say "installing $want into .venv/$name …"
  rm -f "$stamp"
  "$KINSIGHT_TEST_PYTHON" -m venv --clear "$dir" ||
    { _ks_say "$KINSIGHT_TEST_PYTHON -m venv .venv/$name failed"; return 1; }
  "$dir/bin/pip" install -q --disable-pip-version-check --no-input "$@" </dev/null ||
    { _ks_say "pip install $want into .venv/$name failed"; return 1; }
  "$check" "$dir" >/dev/null 2>&1 ||
    { _ks_say ".venv/$name: installed $want, but the check $check fails"; return 1; }
  printf '%s\n' "$want" >"$stamp"
}

_ks_check_moto() { "$1/bin/moto_server" --help; }
# ministack without cbor2 answers PutMetricData with 200 and stores nothing.
_ks_check_ministack() { [ -x "$1/bin/ministack" ] && "$1/bin/python" -c 'import cbor2, ministack'; }

# _ks_start NAME CMD…: run CMD in the background, output to $KINSIGHT_TEST_SCRATCH/NAME.log;
# kinsight_test_env_stop kills it by PID.
_ks_start() {
  local name=$1
  shift
  "$@" >"$KINSIGHT_TEST_SCRATCH/$name.log" 2>&1 </dev/null &
  KINSIGHT_TEST_PIDS+=("$!")
}

# _ks_wait NAME CMD…: retry CMD every 0.2 s until it succeeds, for at most 30 s.
_ks_wait() {
  local name=$1 i
  shift
  for ((i = 0; i < 150; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  _ks_say "$name is not up after 30 s; the end of $KINSIGHT_TEST_SCRATCH/$name.log:"
  tail -n 20 "$KINSIGHT_TEST_SCRATCH/$name.log" >&2 2>/dev/null || true
  return 1
}

# 1. Debian packages. The real-container tests (containerd and runc) need containerd, runc and
#    the static busybox for the hand-made test image; about 20 s the first time, nothing when
#    present. Only as root: containerd cannot run containers otherwise, and those tests then
#    skip (or fail under CI=true, which runs as root). systemd-journal-remote writes the real
#    journal files the journal tests read (from journald's export format).
_ks_env_debs() {
  if [ "$(id -u)" -eq 0 ]; then
    _ks_apt_install containerd runc busybox-static iproute2 systemd-journal-remote || return 1 # ip: the pod veth
    # kubectl renders the kustomize base (tests/deploy.rs). Debian's kubernetes-client ships it
    # (an old kubectl, whose kustomize renders the same objects); a kubectl already on PATH,
    # from any source, is used as it is.
    if ! command -v kubectl >/dev/null; then _ks_apt_install kubernetes-client || return 1; fi
  else
    _ks_say "not root: the containerd and journal tests will skip"
  fi
}

# 2. Python tools, one venv each. The CloudWatch metrics tests add, in their own venv because
#    ministack pins botocore exactly:
#      _ks_venv ministack _ks_check_ministack ministack==1.5.33 cbor2==6.3.0 || return 1
#    with a check that imports cbor2: without it ministack fails silently.
_ks_env_venvs() {
  _ks_venv moto _ks_check_moto 'moto[server]==5.2.5' || return 1
  _ks_venv ministack _ks_check_ministack ministack==1.5.33 cbor2==6.3.0 || return 1
}

# 3. Scratch directory and background services. The scratch path is short because
#    containerd's socket paths must be. The real-container tests' containerd starts here.
_ks_env_services() {
  KINSIGHT_TEST_SCRATCH=$(mktemp -d /tmp/ks.XXXXXX) || { _ks_say "mktemp failed"; return 1; }
  export KINSIGHT_TEST_SCRATCH
  _ks_containerd_start || return 1
}

# For the real-container tests: a containerd of our own — own root, state and socket under the
# scratch directory (Unix socket paths are limited to 108 bytes, hence /tmp/ks.XXXXXX), the CRI
# plugin disabled (no kubelet here) — and the hand-made busybox image (scripts/mk-test-image.sh).
# No systemd runs on the test machines, so installing the package starts no daemon.
_ks_containerd_sock=
_ks_containerd_start() {
  if [ "$(id -u)" -ne 0 ] || ! command -v containerd >/dev/null; then return 0; fi
  local c=$KINSIGHT_TEST_SCRATCH/ctr
  mkdir -p "$c/root" "$c/state"
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = "$c/debug.sock"
  level = "info"
EOF
  _ks_start containerd containerd --config "$c/config.toml"
  _ks_wait containerd ctr -a "$c/containerd.sock" version || return 1
  bash "$KINSIGHT_TEST_ROOT/scripts/mk-test-image.sh" "$KINSIGHT_TEST_SCRATCH" ||
    { _ks_say "scripts/mk-test-image.sh failed"; return 1; }
  _ks_containerd_sock=$c/containerd.sock
}

# Deletes every task and container in our own containerd (tests delete theirs; this catches a
# crashed test), so that no shim outlives it. Snapshots go with the scratch directory.
_ks_containerd_clean() {
  local a=$_ks_containerd_sock id i
  if [ -z "$a" ] || [ ! -S "$a" ]; then return 0; fi
  for id in $(ctr -a "$a" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -a "$a" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    for ((i = 0; i < 50; i++)); do
      ctr -a "$a" -n k8s.io tasks delete "$id" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  for id in $(ctr -a "$a" -n k8s.io containers ls -q 2>/dev/null); do
    ctr -a "$a" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
  done
}

# 4. Tell the tests where everything is. tests/support reads these with
#    `require_env`: a test skips without them, and fails under CI=true.
_ks_env_exports() {
  export KINSIGHT_TEST_SCRATCH
  export KINSIGHT_TEST_MOTO_SERVER="$KINSIGHT_TEST_ROOT/.venv/moto/bin/moto_server"
  if [ -n "$_ks_containerd_sock" ]; then # containerd tests: they import the image themselves
    export KINSIGHT_TEST_CONTAINERD=$_ks_containerd_sock
    export KINSIGHT_TEST_IMAGE=$KINSIGHT_TEST_SCRATCH/kinsight-busybox.oci.tar
  fi
  # like moto, each test starts its own ministack on a free port (tests/support, `Ministack`)
  export KINSIGHT_TEST_MINISTACK_SERVER="$KINSIGHT_TEST_ROOT/.venv/ministack/bin/ministack"
}

# Stop what steps 3–4 started, by PID, and remove what crashed tests left. Safe to call twice.
kinsight_test_env_stop() {
  local p d i
  _ks_containerd_clean
  for p in "${KINSIGHT_TEST_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${KINSIGHT_TEST_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  KINSIGHT_TEST_PIDS=()
  # leftovers of crashed tests: only our marked pod cgroups (UIDs 7e570000-…), containers first
  for d in /sys/fs/cgroup/*/kubepods/*/pod7e570000-*/*/ /sys/fs/cgroup/*/kubepods/pod7e570000-*/*/ \
    /sys/fs/cgroup/*/kubepods/*/pod7e570000-*/ /sys/fs/cgroup/*/kubepods/pod7e570000-*/; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
  done
  # the same for the systemd layout (kubepods.slice/…/kubepods-<qos>-pod<uid_>.slice/<scope>)
  for d in /sys/fs/cgroup/*/kubepods.slice/*/*-pod7e570000_*.slice/*/ \
    /sys/fs/cgroup/*/kubepods.slice/*-pod7e570000_*.slice/*/ \
    /sys/fs/cgroup/*/kubepods.slice/*/*-pod7e570000_*.slice/ /sys/fs/cgroup/*/kubepods.slice/*-pod7e570000_*.slice/; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
  done
  # overlay mounts of a containerd that died with tasks left, before the scratch goes
  if [ -n "${KINSIGHT_TEST_SCRATCH:-}" ]; then
    awk -v s="$KINSIGHT_TEST_SCRATCH/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r d; do umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true; done
  fi
  _ks_containerd_sock=
  unset KINSIGHT_TEST_CONTAINERD KINSIGHT_TEST_IMAGE
  case ${KINSIGHT_TEST_SCRATCH:-} in
    /tmp/ks.?*) rm -rf "$KINSIGHT_TEST_SCRATCH" ;;
  esac
  unset KINSIGHT_TEST_SCRATCH
  return 0
}

if _ks_env_debs && _ks_env_venvs && _ks_env_services && _ks_env_exports; then
  _ks_say "ready (scratch $KINSIGHT_TEST_SCRATCH)"
else
  _ks_say "setup failed"
  kinsight_test_env_stop
  return 1
fi
