#!/usr/bin/env bash
# The benchmark suite of issue #6: whole-process runs of the release
# `cachet` binary side by side with `cp -r` (+ `sync -f`) and `b3sum`, in one
# run on the same files, for the shapes 1 x 256 MiB, 1,000 x 16 KiB and
# 10,000 x 1 KiB; then the in-process criterion figures (host-std/benches/
# cache.rs). Prints one Markdown report (machine, load, tables with ratios,
# targets and peak RSS) and writes it into BENCHMARKS.md between the
# `<!-- bench:begin -->` and `<!-- bench:end -->` markers.
#
# Usage: scripts/bench.sh            (from anywhere; takes 10-20 minutes)
#
# Environment (all optional):
#   BENCH_RUNS=11        timed repetitions per command (the median is shown);
#                        store, restore and hashing alternate with their
#                        baseline round by round
#   BENCH_WARMUP=1       untimed warm-up runs per command
#   BENCH_SHAPES="1x256MiB 1000x16KiB 10000x1KiB"   which shapes to run
#   BENCH_CRITERION=1    0 skips the criterion benches
#   BENCH_DIR=<dir>      parent of the scratch dir [default: the target dir];
#                        must not be a tmpfs
#   BENCH_OUTPUT=<file>  the report file [default: BENCHMARKS.md]; "-" only
#                        prints
#   BENCH_NO_INSTALL=1   never install missing tools (apt-get, cargo install)
#   BENCH_MEMO=1         0 skips the memo benchmarks (scripts/bench-memo.sh)
#   BENCH_REMOTE=1       0 skips the remote benchmarks (scripts/bench-remote.sh)
#   BENCH_SETTLE=360     seconds to wait after the previous run's clean-up
#                        (see below); 0 does not wait
#
# Nothing is deleted between repetitions of the many-file shapes: each run's
# result (a cache entry, a copy, a restored tree) is moved aside with one
# rename into a graveyard that is deleted at the end. ext4 without a journal
# skips inodes deleted in the last 60 s (360 s while their inode table block
# is dirty) when it allocates new ones, so deleting a 10,000-file tree before
# every repetition would make the next repetition's file creations pay for
# it. (The one-file shape deletes its single file instead; see run_shape.)
# For the same reason a run starts at least BENCH_SETTLE seconds after the
# previous run deleted its scratch dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

RUNS=${BENCH_RUNS:-11}
WARMUP=${BENCH_WARMUP:-1}
SHAPES=${BENCH_SHAPES:-"1x256MiB 1000x16KiB 10000x1KiB"}
RUN_CRITERION=${BENCH_CRITERION:-1}
OUTPUT=${BENCH_OUTPUT:-BENCHMARKS.md}
NO_INSTALL=${BENCH_NO_INSTALL:-0}
SETTLE=${BENCH_SETTLE:-360}

BEGIN_MARKER='<!-- bench:begin -->'
END_MARKER='<!-- bench:end -->'

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'bench.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'bench.sh: error: %s\n' "$*" >&2
  exit 1
}

SKIPPED=()
skip() {
  warn "$*"
  SKIPPED+=("$*")
}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a non-negative integer, not '$WARMUP'"
[[ $SETTLE =~ ^[0-9]+$ ]] || die "BENCH_SETTLE must be a number of seconds, not '$SETTLE'"

# --- tools -------------------------------------------------------------------

command -v cargo >/dev/null 2>&1 || die "cargo is required (install Rust with rustup)"

APT_UPDATED=0
apt_install() { # apt_install PACKAGE: best effort, as root only
  [[ $NO_INSTALL == 1 ]] && return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  [[ $(id -u) == 0 ]] || return 1
  if [[ $APT_UPDATED == 0 ]]; then
    apt-get update -qq >/dev/null 2>&1 || return 1
    APT_UPDATED=1
  fi
  say "installing $1 with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1
}

cargo_install() { # cargo_install CRATE
  [[ $NO_INSTALL == 1 ]] && return 1
  say "installing $1 with cargo install (builds from crates.io)"
  cargo install --locked --quiet "$1" >&2
}

# GNU time, for peak RSS (%M).
GNU_TIME=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M true >/dev/null 2>&1; then
  GNU_TIME=/usr/bin/time
elif apt_install time && /usr/bin/time -f %M true >/dev/null 2>&1; then
  GNU_TIME=/usr/bin/time
else
  skip "GNU time (/usr/bin/time -f %M) is missing and could not be installed: peak RSS is not measured (apt-get install time)"
fi

# hyperfine, else a timing loop in bash.
HYPERFINE=""
if command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine; then
  HYPERFINE=$(command -v hyperfine || true)
fi
if [[ -z $HYPERFINE ]]; then
  warn "hyperfine is missing and could not be installed; timing with a loop in bash instead"
fi

# b3sum (multi-threaded by default): the crates.io build matches the blake3
# version cachet links; Debian's package is the fallback.
B3SUM=$(command -v b3sum || true)
if [[ -z $B3SUM ]]; then
  if cargo_install b3sum || apt_install b3sum; then
    B3SUM=$(command -v b3sum || true)
    [[ -n $B3SUM || ! -x $HOME/.cargo/bin/b3sum ]] || B3SUM=$HOME/.cargo/bin/b3sum
  fi
fi
[[ -n $B3SUM ]] || skip "b3sum is missing and could not be installed: input hashing is not compared (cargo install b3sum)"

sync -f . 2>/dev/null || die "'sync -f' is not supported (coreutils >= 8.24 is needed for the cp -r + sync baseline)"

# --- build -------------------------------------------------------------------

# Both binaries are built now, so that the whole-process and the in-process
# figures measure the same source even if the tree changes during the run.
build_release_cachet
BENCH_EXE=""
if [[ $RUN_CRITERION == 1 ]]; then
  say "building the criterion bench (cargo bench -p cachet --bench cache --no-run)"
  BENCH_EXE=$(cargo bench -p cachet --bench cache --no-run --message-format=json |
    grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [[ -n $BENCH_EXE && -x $BENCH_EXE ]] || die "cargo bench --no-run did not name the bench executable"
fi
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ -n $(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  REVISION+=" plus uncommitted changes"
fi

# --- scratch dir -------------------------------------------------------------

PARENT=${BENCH_DIR:-$TARGET_DIR}
mkdir -p "$PARENT"
FS_TYPE=$(stat -f -c %T "$PARENT")
[[ $FS_TYPE != tmpfs && $FS_TYPE != ramfs ]] ||
  die "$PARENT is a $FS_TYPE; point BENCH_DIR at a directory on a disk-backed filesystem"
# The previous run's clean-up deleted up to ~150,000 inodes; on ext4
# without a journal, creating files near them stays slow for up to 360 s.
STAMP=$TARGET_DIR/.bench-cleaned-at
if [[ -f $STAMP ]]; then
  wait_for=$(($(cat "$STAMP" 2>/dev/null || echo 0) + SETTLE - $(date +%s)))
  if ((wait_for > 0)); then
    say "waiting ${wait_for}s after the previous run's clean-up (BENCH_SETTLE=$SETTLE)"
    sleep "$wait_for"
  fi
fi
TMP=$(mktemp -d "$PARENT/cachet-bench.XXXXXX")
cleanup() {
  local code=$?
  if [[ -n ${TMP:-} && -d $TMP ]]; then
    say "removing $TMP"
    rm -rf "$TMP"
    date +%s >"$STAMP" || true
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $CACHET$TMP != *[[:space:]]* ]] ||
  die "the commands are run as shell strings: move the checkout or BENCH_DIR to a path without spaces"
LOG=$TMP/log
mkdir -p "$LOG"

# --- timing ------------------------------------------------------------------

# measure NAME PREPARE COMMAND [ignore-failure]: runs PREPARE (untimed) before
# every run of COMMAND; prints the median, fastest and slowest wall times in
# seconds.
measure() {
  local name=$1 prepare=$2 command=$3 ignore=${4:-}
  if [[ -n $HYPERFINE ]]; then
    local csv=$LOG/$name.csv
    local args=(--style basic --runs "$RUNS" --warmup "$WARMUP" --export-csv "$csv")
    if [[ $command == *[\|\&\;\<\>\$\(\)\`]* ]]; then
      # Shell syntax: hyperfine runs it through its shell and subtracts the
      # time that shell takes to start.
      [[ -z $prepare ]] || args+=(--prepare "$prepare")
    else
      # A plain command line runs without a shell (-N), so figures of about
      # a millisecond are not at the mercy of that subtraction; -N applies
      # to --prepare too, so the prepare step gets its own bash.
      args+=(-N)
      [[ -z $prepare ]] || args+=(--prepare "bash -c '${prepare//\'/\'\\\'\'}'")
    fi
    [[ -z $ignore ]] || args+=(--ignore-failure)
    "$HYPERFINE" "${args[@]}" "$command" >"$LOG/$name.hyperfine" 2>&1 ||
      die "hyperfine failed for $name ($command); see its output:
$(cat "$LOG/$name.hyperfine")"
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
             NR == 2 { if (!col["median"] || !col["min"] || !col["max"]) exit 1
                       print $col["median"], $col["min"], $col["max"] }' "$csv" ||
      die "no median column in $csv (hyperfine too old?)"
  else
    local i start end status times=()
    for ((i = 0; i < WARMUP + RUNS; i++)); do
      [[ -z $prepare ]] || bash -c "$prepare" >/dev/null 2>&1 || die "prepare failed for $name: $prepare"
      start=${EPOCHREALTIME/[.,]/}
      status=0
      bash -c "$command" >/dev/null 2>&1 || status=$?
      end=${EPOCHREALTIME/[.,]/}
      [[ $status == 0 || -n $ignore ]] || die "$name failed (exit $status): $command"
      ((i < WARMUP)) || times+=("$((end - start))")
    done
    printf '%s\n' "${times[@]}" | sort -n |
      awk '{ t[NR] = $1 } END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
                                printf "%.6f %.6f %.6f\n", m / 1e6, t[1] / 1e6, t[NR] / 1e6 }'
  fi
}

# timed NAME PREPARE COMMAND [ignore-failure]: measure, into T (the median)
# and SPAN ("median (fastest … slowest)" for the table).
T=""
SPAN=""
timed() {
  local m lo hi
  m=$(measure "$@")
  read -r T lo hi <<<"$m"
  SPAN="$(fmt_time "$T") ($(fmt_time "$lo") … $(fmt_time "$hi"))"
}

# timed_pair NAME PREPARE COMMAND BASE_NAME BASE_PREPARE BASE_COMMAND:
# RUNS rounds that run COMMAND and then BASE_COMMAND (each after its own
# PREPARE, untimed), after WARMUP untimed rounds, so that whatever drifts
# during the run (writeback of earlier runs, the page cache, another
# process) falls on both alike. Sets T and SPAN for COMMAND and T_BASE and
# SPAN_BASE for BASE_COMMAND; the raw figures (microseconds) go to
# $LOG/NAME.times and $LOG/BASE_NAME.times.
T_BASE=""
SPAN_BASE=""
timed_pair() {
  local name=$1 prepare=$2 command=$3 base_name=$4 base_prepare=$5 base_command=$6
  local i start end
  : >"$LOG/$name.times"
  : >"$LOG/$base_name.times"
  for ((i = 0; i < WARMUP + RUNS; i++)); do
    bash -c "$prepare" >/dev/null 2>&1 || die "prepare failed for $name: $prepare"
    start=${EPOCHREALTIME/[.,]/}
    bash -c "$command" >/dev/null 2>&1 || die "$name failed: $command"
    end=${EPOCHREALTIME/[.,]/}
    ((i < WARMUP)) || echo "$((end - start))" >>"$LOG/$name.times"
    bash -c "$base_prepare" >/dev/null 2>&1 || die "prepare failed for $base_name: $base_prepare"
    start=${EPOCHREALTIME/[.,]/}
    bash -c "$base_command" >/dev/null 2>&1 || die "$base_name failed: $base_command"
    end=${EPOCHREALTIME/[.,]/}
    ((i < WARMUP)) || echo "$((end - start))" >>"$LOG/$base_name.times"
  done
  local lo hi
  read -r T lo hi <<<"$(median_of "$LOG/$name.times")"
  SPAN="$(fmt_time "$T") ($(fmt_time "$lo") … $(fmt_time "$hi"))"
  read -r T_BASE lo hi <<<"$(median_of "$LOG/$base_name.times")"
  SPAN_BASE="$(fmt_time "$T_BASE") ($(fmt_time "$lo") … $(fmt_time "$hi"))"
}

# median_of FILE: microsecond figures, one a line -> "median min max" in
# seconds.
median_of() {
  sort -n "$1" | awk '{ t[NR] = $1 } END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
                                            printf "%.6f %.6f %.6f\n", m / 1e6, t[1] / 1e6, t[NR] / 1e6 }'
}

# peak_rss NAME PREPARE COMMAND: one more run under GNU time; prints the peak
# resident set size in KiB, or nothing when it cannot be measured.
peak_rss() {
  local name=$1 prepare=$2 command=$3
  [[ -n $GNU_TIME ]] || return 0
  [[ -z $prepare ]] || bash -c "$prepare" >/dev/null 2>&1 || die "prepare failed for $name: $prepare"
  "$GNU_TIME" -f %M -o "$LOG/$name.rss" bash -c "$command" >/dev/null 2>&1 || true
  tail -n 1 "$LOG/$name.rss"
}

# --- formatting --------------------------------------------------------------

fmt_time() { # seconds -> "1.23 s" / "45.6 ms" / "7.8 µs"
  [[ -n $1 ]] || {
    echo "—"
    return
  }
  awk -v t="$1" 'BEGIN {
    if (t >= 1) printf "%.2f s", t; else if (t >= 0.001) printf "%.1f ms", t * 1e3
    else printf "%.2f µs", t * 1e6 }'
}
fmt_rss() { # KiB -> MiB
  [[ -n $1 ]] || {
    echo "n/a"
    return
  }
  awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'
}
fraction() { # fraction A B -> A / B unrounded, or nothing
  [[ -z $1 || -z $2 ]] || awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.9f", a / b }'
}
percent() { # percent A B -> A / B as a percentage, rounded up to two decimals
  [[ -z $1 || -z $2 ]] || awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) { p = a / b * 100; r = int(p * 100); if (r < p * 100) r++; printf "%.2f %%", r / 100 } }'
}

thousands() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }


# --- whole-process runs --------------------------------------------------------

# shape_files DIR COUNT BYTES: COUNT files of random bytes below DIR, at most
# 100 per directory.
shape_files() {
  local dir=$1 count=$2 bytes=$3 d n
  mkdir -p "$dir"
  if ((count == 1)); then
    head -c "$bytes" /dev/urandom >"$dir/f0"
    return
  fi
  for ((d = 0; d * 100 < count; d++)); do
    n=$((count - d * 100))
    ((n <= 100)) || n=100
    mkdir -p "$dir/d$(printf %03d "$d")"
    head -c "$((n * bytes))" /dev/urandom | split -b "$bytes" -a 3 -d - "$dir/d$(printf %03d "$d")/f"
  done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

run_shape() {
  local shape=$1 count bytes unit
  [[ $shape =~ ^([0-9]+)x([0-9]+)(KiB|MiB)$ ]] || die "bad shape '$shape' (expected e.g. 1000x16KiB)"
  count=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[3]}
  if [[ $unit == KiB ]]; then bytes=$((BASH_REMATCH[2] * 1024)); else bytes=$((BASH_REMATCH[2] * 1048576)); fi
  local label
  label="$(thousands "$count") × ${BASH_REMATCH[2]} $unit"
  local S=$TMP/$shape
  say "shape $label: generating files in $S"
  mkdir -p "$S/ws" "$S/rws" "$S/graveyard"
  shape_files "$S/ws/out" "$count" "$bytes"
  sync -f "$S"
  cd "$S"

  local c="$CACHET --workspace ws --cache-dir cache"
  local key
  key=$($c key --input 'out/**' -- true | sed -n 1p)
  [[ $key =~ ^[0-9a-f]{64}$ ]] || die "cachet key printed '$key', not a key"
  local entry="cache/${key:0:2}/$key"
  # A miss in the same, populated shard: only the last digit differs.
  local miss_key=${key:0:63}0
  [[ ${key:63} != 0 ]] || miss_key=${key:0:63}1
  # One untimed store creates the cache root and the shard.
  $c store --key "$key" --output out >/dev/null
  # bury PATH: move PATH into the graveyard (one rename), then sync, so each
  # timed run starts with nothing of ours dirty. A one-file result is
  # deleted instead: that frees one inode, and keeping gigabytes of copies
  # in the page cache made copies several times slower on the reference VM.
  # shellcheck disable=SC2016 # expanded by the shell that runs PREPARE
  local bury='bury() { if [ -e "$1" ]; then mv "$1" "graveyard/$(date +%s%N)"; fi; sync -f .; }; bury'
  # shellcheck disable=SC2016
  ((count > 1)) || bury='bury() { rm -rf "$1"; sync -f .; }; bury'

  local t_cachet s_cachet t_base s_base r_cachet r_base
  say "shape $label: store vs cp -r + sync -f"
  timed_pair "$shape-store" "$bury $entry" "$c store --key $key --output out" \
    "$shape-cp-sync" "$bury copy" "cp -r ws/out copy && sync -f copy"
  t_cachet=$T s_cachet=$SPAN t_base=$T_BASE s_base=$SPAN_BASE
  r_cachet=$(peak_rss "$shape-store" "$bury $entry" "$c store --key $key --output out")
  r_base=$(peak_rss "$shape-cp-sync" "$bury copy" "cp -r ws/out copy && sync -f copy")
  row "$label" "store" "$s_cachet" "$s_base, \`cp -r\` + \`sync -f\`" \
    "$(ratio "$t_cachet" "$t_base")×" "≤ 1.5×" "$(at_most "$(ratio "$t_cachet" "$t_base")" 1.5)" \
    "$(fmt_rss "$r_cachet") / $(fmt_rss "$r_base")"
  if ((count == 1)) && [[ -n $r_cachet ]]; then
    row "$label" "store, peak RSS" "$(fmt_rss "$r_cachet")" "$(fmt_rss "$r_base")" "" "≤ 32 MiB" \
      "$(at_most "$r_cachet" 32768)" ""
  fi
  # The store runs above left the entry buried; put one back for restore.
  [[ -e $entry ]] || $c store --key "$key" --output out >/dev/null

  say "shape $label: restore vs cp -r"
  local cr="$CACHET --workspace rws --cache-dir cache"
  timed_pair "$shape-restore" "$bury rws/out" "$cr restore --key $key" \
    "$shape-cp" "$bury rcopy" "cp -r ws/out rcopy"
  t_cachet=$T s_cachet=$SPAN t_base=$T_BASE s_base=$SPAN_BASE
  r_cachet=$(peak_rss "$shape-restore" "$bury rws/out" "$cr restore --key $key")
  r_base=$(peak_rss "$shape-cp" "$bury rcopy" "cp -r ws/out rcopy")
  row "$label" "restore" "$s_cachet" "$s_base, \`cp -r\`" \
    "$(ratio "$t_cachet" "$t_base")×" "≤ 1.5×" "$(at_most "$(ratio "$t_cachet" "$t_base")" 1.5)" \
    "$(fmt_rss "$r_cachet") / $(fmt_rss "$r_base")"
  if ((count == 1)) && [[ -n $r_cachet ]]; then
    row "$label" "restore, peak RSS" "$(fmt_rss "$r_cachet")" "$(fmt_rss "$r_base")" "" "≤ 32 MiB" \
      "$(at_most "$r_cachet" 32768)" ""
  fi

  if [[ -n $B3SUM ]]; then
    say "shape $label: cachet key --input vs b3sum"
    local hash_base="find ws/out -type f -print0 | xargs -0 $B3SUM"
    timed_pair "$shape-key" "true" "$c key --no-memo --input 'out/**' -- true" \
      "$shape-b3sum" "true" "$hash_base"
    t_cachet=$T s_cachet=$SPAN t_base=$T_BASE s_base=$SPAN_BASE
    r_cachet=$(peak_rss "$shape-key" "" "$c key --no-memo --input 'out/**' -- true")
    r_base=$(peak_rss "$shape-b3sum" "" "$hash_base")
    # Throughput >= 0.9x b3sum means time <= b3sum / 0.9.
    row "$label" "input hashing (\`cachet key --no-memo --input\`)" "$s_cachet" \
      "$s_base, \`find\` + \`xargs b3sum\`" "$(ratio "$t_cachet" "$t_base")×" \
      "≤ 1.11× (≥ 0.9× b3sum throughput)" "$(at_most "$(ratio "$t_cachet" "$t_base")" "$(awk 'BEGIN { print 1 / 0.9 }')")" \
      "$(fmt_rss "$r_cachet") / $(fmt_rss "$r_base")"
  fi

  say "shape $label: status hit and miss"
  # No baseline does what status does; process start is its floor.
  timed "$shape-process-start" "" "$CACHET --version"
  t_base=$T s_base=$SPAN
  timed "$shape-status-hit" "" "$c status --key $key"
  t_cachet=$T s_cachet=$SPAN
  r_cachet=$(peak_rss "$shape-status-hit" "" "$c status --key $key")
  row "$label" "\`cachet status\`, hit ($(thousands "$count") output$( ((count == 1)) || echo s))" "$s_cachet" \
    "$s_base, process start (\`cachet --version\`)" "$(ratio "$t_cachet" "$t_base")×" \
    "none whole-process (in-process: see below)" "—" "$(fmt_rss "$r_cachet")"
  timed "$shape-status-miss" "" "$c status --key $miss_key" ignore-failure
  t_cachet=$T s_cachet=$SPAN
  r_cachet=$(peak_rss "$shape-status-miss" "" "$c status --key $miss_key")
  row "$label" "\`cachet status\`, miss" "$s_cachet" \
    "$s_base, process start (\`cachet --version\`)" "$(ratio "$t_cachet" "$t_base")×" \
    "none whole-process (in-process: see below)" "—" "$(fmt_rss "$r_cachet")"

  cd "$REPO"
  # Deleting a one-file shape frees a handful of inodes; many-file shapes
  # are deleted at the very end (see the top of this script).
  if ((count == 1)); then rm -rf "$S"; fi
}

for shape in $SHAPES; do
  run_shape "$shape"
done
LOAD_AFTER_PROCESS=$(cut -d' ' -f1-3 /proc/loadavg)

# --- criterion -----------------------------------------------------------------

CRIT_ROWS=()
crit_row() { CRIT_ROWS+=("| $(printf '%s | ' "$@")"); }
CRITERION_DIR=$TARGET_DIR/criterion
# crit NAME: the median of a criterion benchmark in seconds, or nothing.
crit() {
  local file=$CRITERION_DIR/$1/new/estimates.json
  [[ -f $file ]] || return 0
  sed -n 's/.*"median":{"confidence_interval":{[^}]*},"point_estimate":\([0-9.eE+-]*\).*/\1/p' "$file" |
    awk '{ printf "%.9f\n", $1 / 1e9 }'
}
if [[ $RUN_CRITERION == 1 ]]; then
  say "criterion benches ($BENCH_EXE --bench)"
  rm -rf "$CRITERION_DIR/lookup" "$CRITERION_DIR/key" "$CRITERION_DIR/key_inputs" "$CRITERION_DIR/store_restore_1000x16KiB"
  CARGO_TARGET_DIR=$TARGET_DIR "$BENCH_EXE" --bench >"$LOG/criterion.txt" 2>&1 ||
    die "the criterion bench failed:
$(tail -n 30 "$LOG/criterion.txt")"
  t=$(crit lookup/hit_1000_outputs)
  crit_row "lookup hit, 1,000-output entry (\`Cache::lookup\`, refreshes the mtime)" "$(fmt_time "$t")" "—" "—" "≤ 1 ms" "$(at_most "$t" 0.001)"
  t=$(crit lookup/status_hit_1000_outputs)
  crit_row "lookup hit, 1,000-output entry (\`Cache::lookup_status\`, read-only)" "$(fmt_time "$t")" "—" "—" "≤ 1 ms" "$(at_most "$t" 0.001)"
  t=$(crit lookup/miss)
  crit_row "lookup miss (shard exists, entry does not)" "$(fmt_time "$t")" "—" "—" "≤ 5 µs" "$(at_most "$t" 0.000005)"
  # The target: what deriving the key adds to hashing the inputs it is
  # derived from (see "Key derivation" under Method).
  for shape in 1:268435456:"1 × 256 MiB" 1000:16384:"1,000 × 16 KiB" 10000:1024:"10,000 × 1 KiB"; do
    IFS=: read -r n bytes label <<<"$shape"
    t=$(crit "key/derive_key/$n")
    b=$(crit "key_inputs/hash/${n}x$bytes")
    [[ -n $t && -n $b ]] || continue
    crit_row "key derivation overhead, $label: \`derive_key\` over $n input digests vs hashing those inputs' bytes (BLAKE3, in memory, one thread)" \
      "$(fmt_time "$t")" "$(fmt_time "$b")" "$(percent "$t" "$b")" "≤ 5 %" "$(at_most "$(fraction "$t" "$b")" 0.05)"
  done
  for n in 10 1000 10000; do
    t=$(crit "key/derive_key/$n")
    b=$(crit "key/hash_canonical_bytes/$n")
    [[ -n $t && -n $b ]] || continue
    crit_row "key derivation, $n input files (\`derive_key\` vs BLAKE3 of the same canonical bytes, materialised)" \
      "$(fmt_time "$t")" "$(fmt_time "$b")" "$(ratio "$t" "$b")×" "— (see Method)" "—"
    t=$(crit "key/derive_key_unsorted/$n")
    crit_row "key derivation, $n input files, reverse-sorted (includes the sort)" \
      "$(fmt_time "$t")" "$(fmt_time "$b")" "$(ratio "$t" "$b")×" "—" "—"
  done
  t=$(crit store_restore_1000x16KiB/store)
  b=$(crit store_restore_1000x16KiB/baseline_copy_syncfs)
  crit_row "store 1,000 × 16 KiB via \`CapStdFilesystem\` (vs \`std::fs::copy\` each + \`syncfs\`)" \
    "$(fmt_time "$t")" "$(fmt_time "$b")" "$(ratio "$t" "$b")×" "≤ 1.5×" "$(at_most "$(ratio "$t" "$b")" 1.5)"
  t=$(crit store_restore_1000x16KiB/restore)
  b=$(crit store_restore_1000x16KiB/baseline_copy)
  crit_row "restore 1,000 × 16 KiB via \`CapStdFilesystem\` (vs \`std::fs::copy\` each)" \
    "$(fmt_time "$t")" "$(fmt_time "$b")" "$(ratio "$t" "$b")×" "≤ 1.5×" "$(at_most "$(ratio "$t" "$b")" 1.5)"
else
  skip "criterion benches skipped (BENCH_CRITERION=0)"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------

first_line() { "$@" 2>/dev/null | head -n 1 || true; }
# ext4's journal: a journaled ext4 device has a /proc/fs/jbd2/<dev>-<n> dir.
journal_note() {
  local dev
  dev=$(basename "$(df "$PARENT" | awk 'NR == 2 { print $1 }')")
  if [[ -d /proc/fs/ext4/$dev ]]; then
    if compgen -G "/proc/fs/jbd2/$dev-*" >/dev/null; then echo ", with a journal"; else echo ", without a journal"; fi
  fi
}
REPORT=$TMP/report.md
{
  echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "**Load average (1, 5, 15 min):** $LOAD_BEFORE at the start, $LOAD_AFTER_PROCESS after the whole-process runs, $LOAD_AFTER at the end."
  echo "A load well above 0 on this $(nproc)-CPU machine means other work competed for the CPUs and the disk; rerun on a quiet machine before drawing conclusions."
  echo
  echo "### Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU | $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs online |"
  echo "| memory | $(free -h | awk '/^Mem:/ { print $2 }') total, $(free -h | awk '/^Mem:/ { print $7 }') available at the start of the report |"
  echo "| kernel | $(uname -sr) |"
  echo "| bench filesystem | $(df -T "$PARENT" | awk 'NR == 2 { print $2 }') on \`$(df "$PARENT" | awk 'NR == 2 { print $1 }')\`, mounted \`$(findmnt -n -o OPTIONS -T "$PARENT" 2>/dev/null || echo '?')\`$(journal_note) |"
  echo "| rustc | $(rustc --version) |"
  echo "| cachet | $REVISION (when the script built it), release profile |"
  echo "| timer | store, restore and hashing: a bash loop over \$EPOCHREALTIME, alternating with the baseline, median of $RUNS rounds after $WARMUP warm-up round(s); status: $(if [[ -n $HYPERFINE ]]; then first_line "$HYPERFINE" --version; else echo "the same loop"; fi), median of $RUNS runs |"
  echo "| baselines | $(first_line cp --version), $([[ -n $B3SUM ]] && first_line "$B3SUM" --version || echo 'no b3sum') |"
  echo
  echo "### Whole process (\`target/release/cachet\`)"
  echo
  echo "Times are medians, with the fastest and slowest run in parentheses; the ratio is of the medians."
  echo
  echo "| shape | operation | cachet | baseline | ratio | target | met? | peak RSS (cachet / baseline) |"
  echo "|---|---|---:|---:|---:|---|---|---:|"
  printf '%s\n' "${ROWS[@]}"
  if ((${#CRIT_ROWS[@]})); then
    echo
    echo "### In process (criterion, \`host-std/benches/cache.rs\`)"
    echo
    echo "| benchmark | cachet (median) | baseline (median) | ratio | target | met? |"
    echo "|---|---:|---:|---:|---|---|"
    printf '%s\n' "${CRIT_ROWS[@]}"
  fi
  if ((${#SKIPPED[@]})); then
    echo
    echo "**Skipped:**"
    printf -- '- %s\n' "${SKIPPED[@]}"
  fi
} >"$REPORT"

cat "$REPORT"

if [[ $OUTPUT != "-" ]]; then
  if [[ ! -f $OUTPUT ]]; then
    printf '# Benchmarks\n\n%s\n%s\n' "$BEGIN_MARKER" "$END_MARKER" >"$OUTPUT"
  fi
  { grep -qxF "$BEGIN_MARKER" "$OUTPUT" && grep -qxF "$END_MARKER" "$OUTPUT"; } ||
    die "$OUTPUT lacks the lines '$BEGIN_MARKER' and '$END_MARKER'; the report is printed above"
  awk -v begin="$BEGIN_MARKER" -v end="$END_MARKER" -v report="$REPORT" '
    $0 == begin { print; while ((getline line < report) > 0) print line; skipping = 1; next }
    $0 == end { skipping = 0 }
    !skipping { print }' "$OUTPUT" >"$TMP/output.md"
  cat "$TMP/output.md" >"$OUTPUT"
  say "wrote the report into $OUTPUT"
fi
# Keep the raw measurements (hyperfine CSVs with min/max, RSS, criterion's
# output) for a closer look; the scratch dir itself is removed on exit.
rm -rf "$TARGET_DIR/bench-logs"
cp -r "$LOG" "$TARGET_DIR/bench-logs"
say "raw measurements: $TARGET_DIR/bench-logs"
if ((${#SKIPPED[@]})); then
  warn "some measurements were skipped:"
  printf '  - %s\n' "${SKIPPED[@]}" >&2
fi

# The file-hash memo against turbo and the physical limit (issue #14): its
# own script, since it needs npm; BENCH_MEMO=0 skips it.
if [[ ${BENCH_MEMO:-1} == 1 ]]; then
  if command -v npm >/dev/null 2>&1; then
    BENCH_OUTPUT=$OUTPUT "$REPO/scripts/bench-memo.sh"
  else
    warn "npm is missing: the memo benchmarks (scripts/bench-memo.sh) were not run"
  fi
fi

# The remote tier against rclone on one Garage node (issue #12): its own
# script, since it starts a server; BENCH_REMOTE=0 skips it.
if [[ ${BENCH_REMOTE:-1} == 1 ]]; then
  BENCH_OUTPUT=$OUTPUT "$REPO/scripts/bench-remote.sh"
fi
