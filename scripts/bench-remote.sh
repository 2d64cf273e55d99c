#!/usr/bin/env bash
# The benchmarks of issue #12 (the remote tier), side by side in one run
# against one Garage node on loopback:
#
#   1. remote store: `cachet run` storing an entry and pushing it to a fresh
#      remote prefix (local store included), against `rclone copy` of the
#      same files to a fresh prefix (`--transfers 16`);
#   2. remote restore on a fresh machine: `cachet run` with an empty cache
#      directory and the outputs removed (download, verify, backfill,
#      restore), against `rclone copy` of the same files down;
#   3. a remote miss: a read-only `cachet run` whose key no remote holds,
#      against the same run with no remote; the difference is what the
#      remote costs;
#   4. peak RSS of the store and the restore (`/usr/bin/time`), and the
#      bytes the remote holds after a store (compression).
#
# Shapes: 1,000 outputs × 16 KiB and 1 × 256 MiB of random bytes, and
# 1,000 × 16 KiB of text (compressible). Every comparison alternates the
# two commands round by round (BENCH_ROUNDS, at least 10); cells are the
# median with the range. The report is printed and written into
# BENCHMARKS.md between `<!-- bench-remote:begin -->` and
# `<!-- bench-remote:end -->`.
#
# Usage: scripts/bench-remote.sh      (about 10 minutes; installs rclone
#                                      with apt-get when missing)
# Environment (all optional):
#   BENCH_ROUNDS=11      alternating rounds per comparison (>= 10)
#   BENCH_DIR=<dir>      parent of the scratch dir [default: the target dir]
#   BENCH_OUTPUT=<file>  the report file [default: BENCHMARKS.md]; "-" only prints
#   BENCH_REMOTE_SHAPES="1000x16KiB 1x256MiB 1000x16KiB-text"
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

ROUNDS=${BENCH_ROUNDS:-11}
OUTPUT=${BENCH_OUTPUT:-BENCHMARKS.md}
SHAPES=${BENCH_REMOTE_SHAPES:-"1000x16KiB 1x256MiB 1000x16KiB-text"}
BEGIN_MARKER='<!-- bench-remote:begin -->'
END_MARKER='<!-- bench-remote:end -->'

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'bench-remote.sh: error: %s\n' "$*" >&2
  exit 1
}

[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 10 ]] || die "BENCH_ROUNDS must be at least 10, not '$ROUNDS'"
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[[ -x $GARAGE ]] || die "garage is missing: cargo install garage --locked --version 2.5.0"
if ! command -v rclone >/dev/null 2>&1; then
  say "installing rclone with apt-get"
  apt-get install -y -q rclone >&2 || die "rclone is missing and apt-get could not install it"
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

build_release_cachet
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"

SCRATCH_PARENT=${BENCH_DIR:-$TARGET_DIR}
mkdir -p "$SCRATCH_PARENT"
SCRATCH=$(mktemp -d "$SCRATCH_PARENT/bench-remote.XXXXXX")
GARAGE_PID=
cleanup() {
  [[ -z $GARAGE_PID ]] || kill "$GARAGE_PID" 2>/dev/null || true
  [[ -z $GARAGE_PID ]] || wait "$GARAGE_PID" 2>/dev/null || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- one Garage node on loopback -------------------------------------------
RPC_PORT=$(free_port)
API_PORT=$(free_port)
mkdir -p "$SCRATCH/garage"
cat >"$SCRATCH/garage/garage.toml" <<EOF
metadata_dir = "$SCRATCH/garage/meta"
data_dir = "$SCRATCH/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(printf 'ab%.0s' $(seq 32))"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$API_PORT"
EOF
export AWS_ACCESS_KEY_ID=GK$(printf '12%.0s' $(seq 12))
export AWS_SECRET_ACCESS_KEY=$(printf 'cd%.0s' $(seq 32))
BUCKET=bench
GARAGE_DEFAULT_ACCESS_KEY=$AWS_ACCESS_KEY_ID GARAGE_DEFAULT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
  GARAGE_DEFAULT_BUCKET=$BUCKET RUST_LOG=warn \
  "$GARAGE" -c "$SCRATCH/garage/garage.toml" server --single-node --default-bucket \
  </dev/null >/dev/null 2>"$SCRATCH/garage/log" &
GARAGE_PID=$!
ENDPOINT=http://127.0.0.1:$API_PORT
GARAGE_VERSION=$("$GARAGE" --version 2>/dev/null | head -n 1 || echo garage)

# rclone reads AWS_CA_BUNDLE even for plain http and fails; it gets its
# configuration from the environment, never a file.
rclone_() {
  env -u AWS_CA_BUNDLE RCLONE_CONFIG=/dev/null RCLONE_S3_PROVIDER=Other \
    RCLONE_S3_ENDPOINT="$ENDPOINT" RCLONE_S3_REGION=garage RCLONE_S3_FORCE_PATH_STYLE=true \
    RCLONE_S3_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_S3_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    rclone "$@"
}
RCLONE_VERSION=$(rclone version 2>/dev/null | head -n 1)

say "waiting for Garage on $ENDPOINT"
ready=
for _ in $(seq 100); do
  if rclone_ lsf ":s3:$BUCKET" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$GARAGE_PID" 2>/dev/null || die "garage exited: $(cat "$SCRATCH/garage/log")"
  sleep 0.1
done
[[ -n $ready ]] || die "garage did not answer within 10 s: $(cat "$SCRATCH/garage/log")"

remote_url() { printf 's3://%s/%s?endpoint=%s&region=garage' "$BUCKET" "$1" "$ENDPOINT"; }
# Bytes the remote holds below a prefix.
remote_bytes() { rclone_ size --json ":s3:$BUCKET/$1" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'; }

# settle: what every timed command starts from, whichever side it is.
# Nothing is deleted inside a timed loop (each round writes into fresh
# directories, all removed when the script ends): ext4 without a journal
# (as on these machines) skips every inode freed in the last 60 s (360 s
# while its inode table block is unwritten) when it allocates a new one,
# scanning past each on every create, so a command that follows a mass
# deletion pays for it, whoever deleted. And the page cache is written
# back first, so that neither side's sync flushes the other's files.
# Last, the files a timed command reads are put back in the page cache:
# rclone calls posix_fadvise(POSIX_FADV_DONTNEED) on every file it has
# read (strace: 2,000 calls for 1,000 files), so the store that followed
# an rclone upload read the workspace's outputs from disk (113-129 ms for
# a local store of 1,000 x 16 KiB that takes 53-62 ms when they are
# cached, as a task's fresh outputs are). Both sides get them cached.
settle() {
  sync
  (($# == 0)) || find "$@" -type f -exec cat {} + >/dev/null
}

# forget_round SHAPE PATH...: a shape of one large file may delete what a
# round wrote (a few inodes: nothing for ext4 to scan), so that eleven
# rounds of 768 MiB do not fill the page cache and make every later
# allocation a reclaim; shapes of many files keep theirs (see settle).
forget_round() {
  local shape=$1
  shift
  [[ $shape != 1x* ]] || rm -rf "$@"
}

# make_outputs DIR SHAPE: the outputs a task would have written.
make_outputs() {
  local dir=$1 shape=$2
  mkdir -p "$dir"
  case $shape in
  1000x16KiB) python3 -c '
import os, sys
for i in range(1000):
    open(os.path.join(sys.argv[1], f"out-{i:04d}.bin"), "wb").write(os.urandom(16384))' "$dir" ;;
  1000x16KiB-text) python3 -c '
import os, random, sys
words = ["fn", "let", "mut", "self", "impl", "match", "return", "cache", "entry", "key", "->", "{", "}", "(", ")", ";"]
rng = random.Random(7)
for i in range(1000):
    text, size = [], 0
    while size < 16384:
        w = rng.choice(words); text.append(w); size += len(w) + 1
    open(os.path.join(sys.argv[1], f"out-{i:04d}.rs"), "w").write(" ".join(text)[:16384])' "$dir" ;;
  1x256MiB) head -c $((256 << 20)) /dev/urandom >"$dir/out.bin" ;;
  *) die "unknown shape '$shape'" ;;
  esac
}

run_shape() {
  local shape=$1 label
  case $shape in
  1000x16KiB) label="1,000 × 16 KiB" ;;
  1000x16KiB-text) label="1,000 × 16 KiB text" ;;
  1x256MiB) label="1 × 256 MiB" ;;
  esac
  local dir=$SCRATCH/$shape
  local ws=$dir/ws
  mkdir -p "$ws"
  make_outputs "$ws/out" "$shape"
  printf '%s\n' "$shape" >"$ws/in.txt"
  local raw_bytes
  raw_bytes=$(du -sb --apparent-size "$ws/out" | cut -f1)
  # The task writes nothing: its outputs are already there, so a store
  # times the cache, not the task.
  local step=(--workspace "$ws" --input in.txt --output out -- true)

  local s=$dir/store.ns r=$dir/rclone-up.ns
  : >"$s"; : >"$r"
  say "$shape: $ROUNDS alternating rounds of cachet store+push / rclone upload"
  local start i
  for i in $(seq "$ROUNDS"); do
    settle "$ws/out"
    stamp; start=$NOW
    "$CACHET" --cache-dir "$dir/cache-store-$i" -v run --remote "$(remote_url "$shape/cachet-$i")" "${step[@]}" \
      >/dev/null 2>"$dir/said"
    stamp; echo $((NOW - start)) >>"$s"
    grep -q 'warning' "$dir/said" && die "cachet warned while storing: $(cat "$dir/said")"
    settle "$ws/out"
    stamp; start=$NOW
    rclone_ copy --transfers 16 "$ws/out" ":s3:$BUCKET/$shape/rclone-$i"
    stamp; echo $((NOW - start)) >>"$r"
    forget_round "$shape" "$dir/cache-store-$i"
  done
  local stored_bytes rclone_bytes
  stored_bytes=$(remote_bytes "$shape/cachet-1")
  rclone_bytes=$(remote_bytes "$shape/rclone-1")

  local f=$dir/restore.ns d=$dir/rclone-down.ns
  : >"$f"; : >"$d"
  say "$shape: $ROUNDS alternating rounds of cachet restore on a fresh machine / rclone download"
  for i in $(seq "$ROUNDS"); do
    mv "$ws/out" "$dir/restored-$i"
    settle
    stamp; start=$NOW
    "$CACHET" --cache-dir "$dir/cache-fresh-$i" -v run --remote "$(remote_url "$shape/cachet-1")" "${step[@]}" \
      >/dev/null 2>"$dir/said"
    stamp; echo $((NOW - start)) >>"$f"
    grep -q '^cachet: hit .*remote' "$dir/said" || die "the fresh run was not a remote hit: $(cat "$dir/said")"
    settle
    stamp; start=$NOW
    rclone_ copy --transfers 16 ":s3:$BUCKET/$shape/rclone-1" "$dir/down-$i"
    stamp; echo $((NOW - start)) >>"$d"
    cmp -s "$dir/down-$i/$(ls "$ws/out" | head -n 1)" "$ws/out/$(ls "$ws/out" | head -n 1)" ||
      die "rclone's download differs from cachet's restore"
    forget_round "$shape" "$dir/restored-$i" "$dir/cache-fresh-$i" "$dir/down-$i"
  done

  say "$shape: peak RSS of one store and one restore"
  local rss_store rss_restore
  /usr/bin/time -f %M -o "$dir/rss" "$CACHET" --cache-dir "$dir/cache-rss" run \
    --remote "$(remote_url "$shape/rss")" "${step[@]}" >/dev/null 2>&1
  rss_store=$(tail -n 1 "$dir/rss")
  rm -rf "$dir/cache-rss" "$ws/out.keep"
  mv "$ws/out" "$ws/out.keep"
  /usr/bin/time -f %M -o "$dir/rss" "$CACHET" --cache-dir "$dir/cache-rss" run \
    --remote "$(remote_url "$shape/rss")" "${step[@]}" >/dev/null 2>&1
  rss_restore=$(tail -n 1 "$dir/rss")
  cmp -s "$ws/out/$(ls "$ws/out.keep" | head -n 1)" "$ws/out.keep/$(ls "$ws/out.keep" | head -n 1)" ||
    die "the RSS restore did not restore the outputs"
  rm -rf "$ws/out.keep" "$dir/cache-rss"

  local ss rs fs ds ratio_
  ss=$(stats "$s"); rs=$(stats "$r"); fs=$(stats "$f"); ds=$(stats "$d")
  local store_limit=0.15 restore_limit=0.15
  if [[ $shape == 1x256MiB ]]; then store_limit=1.0; restore_limit=1.0; fi
  ratio_=$(ratio "${fs%% *}" "${ds%% *}")
  row "$label" "remote restore, fresh machine" "$(cell "$fs")" "$(cell "$ds"), rclone download" "${ratio_}×" "≤ ${restore_limit}×" "$(at_most "$ratio_" "$restore_limit")"
  ratio_=$(ratio "${ss%% *}" "${rs%% *}")
  row "$label" "remote store (local store + push)" "$(cell "$ss")" "$(cell "$rs"), rclone upload" "${ratio_}×" "≤ ${store_limit}×" "$(at_most "$ratio_" "$store_limit")"
  row "$label" "peak RSS, store / restore" "$((rss_store / 1024)) MiB / $((rss_restore / 1024)) MiB" "64 MiB" "" "≤ 64 MiB" \
    "$(at_most "$(((rss_store > rss_restore ? rss_store : rss_restore) / 1024))" 64)"
  row "$label" "bytes on the remote after a store (raw $raw_bytes)" "$stored_bytes" "$rclone_bytes, rclone" \
    "$(ratio "$stored_bytes" "$raw_bytes")× of raw" "" ""
  # $dir stays until the script ends (see settle).
}

# A remote miss: the same read-only run, key unknown everywhere, with and
# without the remote; alternating, a fresh input (so a fresh key) each time.
measure_miss() {
  local dir=$SCRATCH/miss ws=$SCRATCH/miss/ws
  mkdir -p "$ws"
  local with=$dir/with.ns without=$dir/without.ns
  : >"$with"; : >"$without"
  local step=(--workspace "$ws" --input in.txt -- true)
  # A few milliseconds each: five times the rounds, for a stable median.
  local pairs=$((ROUNDS * 5))
  say "miss: $pairs alternating rounds with / without the remote"
  local start i
  for i in $(seq $((pairs * 2))); do
    printf 'miss %s %s\n' "$i" "$RANDOM" >"$ws/in.txt"
    stamp; start=$NOW
    if ((i % 2)); then
      "$CACHET" --cache-dir "$dir/cache" run --remote-read-only --remote "$(remote_url miss)" "${step[@]}" >/dev/null 2>&1
      stamp; echo $((NOW - start)) >>"$with"
    else
      "$CACHET" --cache-dir "$dir/cache" run "${step[@]}" >/dev/null 2>&1
      stamp; echo $((NOW - start)) >>"$without"
    fi
  done
  local ws_ wo_ cost
  ws_=$(stats "$with"); wo_=$(stats "$without")
  cost=$(awk -v a="${ws_%% *}" -v b="${wo_%% *}" 'BEGIN { printf "%.6f", a - b }')
  row "—" "remote miss: read-only run with the remote ($pairs rounds each)" "$(cell "$ws_")" "$(cell "$wo_"), the same run without" \
    "+$(fmt "$cost")" "≤ +3 ms" "$(at_most "$cost" 0.003)"
}

# Inodes freed by whatever ran before (an earlier benchmark's clean-up)
# are skipped for a minute when ext4 without a journal allocates new
# ones (see settle): wait until they are forgotten.
say "waiting 61 s for the filesystem to forget earlier deletions"
sync
sleep 61
for shape in $SHAPES; do
  run_shape "$shape"
done
measure_miss

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT=$(
  cat <<EOF
$BEGIN_MARKER
Measured by \`scripts/bench-remote.sh\` at revision $REVISION on $(date -u '+%Y-%m-%d %H:%M UTC'):
$(machine "$SCRATCH"), load average $LOAD before the report;
one $GARAGE_VERSION node on loopback; $RCLONE_VERSION with \`--transfers 16\`.
Each cell is the median of $ROUNDS alternating rounds, with the range in
parentheses; the ratio is of the medians. A store is \`cachet run\` of a task
whose outputs exist (local store, then push to a fresh prefix); a restore
is \`cachet run\` with an empty cache directory and the outputs removed.

| shape | what | cachet | compared with | ratio | target | met |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")
$END_MARKER
EOF
)
printf '%s\n' "$REPORT"
if [[ $OUTPUT != - ]]; then
  write_report "$OUTPUT" "$REPORT" "$BEGIN_MARKER" "$END_MARKER" "## The remote tier (issue #12)"
  say "wrote the report into $OUTPUT"
fi
