#!/usr/bin/env bash
# The benchmarks of issue #14 (the file-hash memo), side by side in one run:
#
#   1. a hit of `cachet run` against a hit of `turbo run` (npm package
#      `turbo`, its native binary) on the same npm workspace, the same task
#      and the same files, with the task's 200 outputs removed before each
#      hit, for two shapes: 20,000 inputs of 4 KiB, and one 1 GiB input;
#   2. the same cachet hit against its physical limit: stat-ing the inputs
#      (`find ... -printf '%s %T@'`) plus `cp -r` of the outputs;
#   3. the first cachet run after one input of the 20,000 was edited (a hit
#      whose key needs that one file hashed again) against the unedited hit.
#
# Every comparison alternates the commands round by round (BENCH_ROUNDS,
# at least 10), and the report gives the median with the range, and the
# ratio of the medians. It prints a Markdown report and writes it into
# BENCHMARKS.md between `<!-- bench-memo:begin -->` and
# `<!-- bench-memo:end -->`.
#
# Usage: scripts/bench-memo.sh        (about 5 minutes; needs node and npm)
#
# Environment (all optional):
#   BENCH_ROUNDS=11      alternating rounds per comparison (>= 10)
#   BENCH_DIR=<dir>      parent of the scratch dir [default: the target dir];
#                        must not be a tmpfs
#   BENCH_OUTPUT=<file>  the report file [default: BENCHMARKS.md]; "-" only
#                        prints
#   BENCH_MEMO_SHAPES="20000x4KiB 1x1GiB"   which shapes to run
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

ROUNDS=${BENCH_ROUNDS:-11}
OUTPUT=${BENCH_OUTPUT:-BENCHMARKS.md}
SHAPES=${BENCH_MEMO_SHAPES:-"20000x4KiB 1x1GiB"}
TURBO_VERSION=2.11.11
BEGIN_MARKER='<!-- bench-memo:begin -->'
END_MARKER='<!-- bench-memo:end -->'

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'bench-memo.sh: error: %s\n' "$*" >&2
  exit 1
}

[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 10 ]] || die "BENCH_ROUNDS must be at least 10, not '$ROUNDS'"
command -v npm >/dev/null 2>&1 || die "npm is required (it installs turbo)"
command -v git >/dev/null 2>&1 || die "git is required (turbo hashes through git)"

build_release_cachet
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"

SCRATCH_PARENT=${BENCH_DIR:-$TARGET_DIR}
mkdir -p "$SCRATCH_PARENT"
SCRATCH=$(mktemp -d "$SCRATCH_PARENT/bench-memo.XXXXXX")
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT
if [[ $(stat -f -c %T "$SCRATCH") == tmpfs ]]; then
  die "$SCRATCH is on a tmpfs; set BENCH_DIR to a directory on disk"
fi

# turbo, once, outside the workspaces: its native binary, so that neither
# side pays for a node start-up.
say "installing turbo $TURBO_VERSION with npm"
mkdir -p "$SCRATCH/tools"
(cd "$SCRATCH/tools" && npm init -y >/dev/null &&
  npm install --silent --no-audit --no-fund "turbo@$TURBO_VERSION" >&2)
TURBO=$(ls "$SCRATCH"/tools/node_modules/@turbo/linux-*/bin/turbo 2>/dev/null | head -n 1)
[[ -x $TURBO ]] || die "npm did not install turbo's native binary"
NPM_VERSION=$(npm --version)
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1


# make_workspace DIR COUNT SIZE: an npm workspace with one package `app`
# whose task `build` writes 200 outputs into packages/app/dist.
make_workspace() {
  local dir=$1 count=$2 size=$3
  mkdir -p "$dir/packages/app/src"
  cat >"$dir/package.json" <<EOF
{"name": "bench", "private": true, "workspaces": ["packages/*"], "packageManager": "npm@$NPM_VERSION"}
EOF
  cat >"$dir/turbo.json" <<'EOF'
{"tasks": {"build": {"outputs": ["dist/**"]}}}
EOF
  printf 'node_modules\n.turbo\ndist\n.cachet\n' >"$dir/.gitignore"
  cat >"$dir/packages/app/package.json" <<'EOF'
{"name": "app", "version": "1.0.0", "scripts": {"build": "sh build.sh"}}
EOF
  cat >"$dir/packages/app/build.sh" <<'EOF'
set -e
mkdir -p dist
i=0
while [ $i -lt 200 ]; do
  head -c 4096 /dev/urandom > dist/out-$i.bin
  i=$((i + 1))
done
echo built
EOF
  if [[ $count == 1 ]]; then
    head -c "$size" /dev/urandom >"$dir/packages/app/src/big.bin"
  else
    python3 - "$dir/packages/app/src" "$count" "$size" <<'EOF'
import os, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = os.path.join(root, f"d{i // 200:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "wb") as f:
        f.write(os.urandom(size))
EOF
  fi
  # A lockfile, as turbo expects of an npm workspace (no dependencies).
  (cd "$dir" && npm install --silent --no-audit --no-fund >/dev/null)
  (cd "$dir" && git init -q && git add -A && git -c user.name=bench -c user.email=bench@invalid commit -qm files)
}

# A timed cachet run that was not a hit would time the task, not the cache.
# retire DIR: removes the outputs before a hit by moving them out of the
# workspace, never by deleting them (they go when the script ends). This
# machine's ext4 has no journal, and without one ext4 skips every inode
# freed in the last minute (six while its inode table block is unwritten)
# when it allocates, scanning past each on every create: deleting 200
# outputs a round would make every later create of every contender slower
# by how many were deleted lately, which measures the filesystem, not the
# tools. A rename frees no inode.
RETIRED=0
retire() {
  [[ -e $1 ]] || return 0
  RETIRED=$((RETIRED + 1))
  mkdir -p "$SCRATCH/retired"
  mv "$1" "$SCRATCH/retired/$RETIRED"
}

# settle: before the timed rounds of a shape, the page cache is written
# back and inodes freed by earlier work (npm, a previous benchmark's
# clean-up) are left a minute to be forgotten.
settle() {
  sync
  sleep 61
}

hit_or_die() {
  grep -q '^cachet: hit ' "$SCRATCH/said" || die "a timed cachet run was not a hit: $(cat "$SCRATCH/said")"
}

run_shape() {
  local shape=$1 count size label
  case $shape in
  20000x4KiB) count=20000 size=4096 label="20,000 × 4 KiB inputs" ;;
  1x1GiB) count=1 size=$((1 << 30)) label="1 × 1 GiB input" ;;
  2000x4KiB) count=2000 size=4096 label="2,000 × 4 KiB inputs" ;; # a quick try of the script
  *) die "unknown shape '$shape'" ;;
  esac
  local ws=$SCRATCH/$shape
  say "$shape: making the workspace"
  make_workspace "$ws" "$count" "$size"
  local app=$ws/packages/app
  # -v: every timed run is checked to have been a hit (hit_or_die).
  local cachet_cmd=("$CACHET" -v run --workspace "$app" --output dist -- sh build.sh)
  local turbo_cmd=("$TURBO" run build --output-logs=none)

  say "$shape: first runs (misses) and a copy of the outputs"
  (cd "$ws" && "${cachet_cmd[@]}" >/dev/null)
  retire "$app/dist"
  (cd "$ws" && "${turbo_cmd[@]}" >/dev/null)
  cp -r "$app/dist" "$SCRATCH/dist-copy"
  # One more unmeasured hit each, so that both caches are warm and the
  # memo holds every input (MEMO-4: the files are now old enough).
  sleep 1
  for _ in 1 2; do
    retire "$app/dist" && (cd "$ws" && "${cachet_cmd[@]}" >/dev/null)
    retire "$app/dist" && (cd "$ws" && "${turbo_cmd[@]}" >/dev/null)
  done

  local c=$SCRATCH/c.ns t=$SCRATCH/t.ns l=$SCRATCH/l.ns f=$SCRATCH/f.ns
  : >"$c"; : >"$t"; : >"$l"; : >"$f"
  say "$shape: waiting 61 s for the filesystem to forget earlier deletions"
  settle
  say "$shape: $ROUNDS alternating rounds of cachet hit / turbo hit / stat + cp -r / nothing"
  local start
  for _ in $(seq "$ROUNDS"); do
    # What the timer itself costs (a subshell that does nothing), so
    # that a reader can tell how much of each figure no contender can cut.
    stamp; start=$NOW; (cd "$ws" && true); stamp; echo $((NOW - start)) >>"$f"
    retire "$app/dist"
    stamp; start=$NOW; (cd "$ws" && "${cachet_cmd[@]}" >/dev/null 2>"$SCRATCH/said"); stamp; echo $((NOW - start)) >>"$c"
    hit_or_die
    [[ -f $app/dist/out-0.bin ]] || die "cachet did not restore the outputs"
    retire "$app/dist"
    stamp; start=$NOW; (cd "$ws" && "${turbo_cmd[@]}" >/dev/null); stamp; echo $((NOW - start)) >>"$t"
    [[ -f $app/dist/out-0.bin ]] || die "turbo did not restore the outputs"
    retire "$app/dist"
    stamp; start=$NOW
    find "$app" -path "$app/.cachet" -prune -o -type f -printf '%s %T@\n' >/dev/null
    cp -r "$SCRATCH/dist-copy" "$app/dist"
    stamp; echo $((NOW - start)) >>"$l"
  done
  local cs ts ls
  cs=$(stats "$c"); ts=$(stats "$t"); ls=$(stats "$l")
  FLOORS+=("$label: $(cell "$(stats "$f")")")
  local r
  r=$(ratio "${cs%% *}" "${ts%% *}")
  row "$label" "hit, outputs removed" "$(cell "$cs")" "$(cell "$ts"), \`turbo run\`" "${r}×" "≤ 0.25×" "$(at_most "$r" 0.25)"
  r=$(ratio "${cs%% *}" "${ls%% *}")
  row "$label" "hit against its physical limit" "$(cell "$cs")" "$(cell "$ls"), \`find -printf\` + \`cp -r\`" "${r}×" "≤ 2×" "$(at_most "$r" 2)"

  if [[ $count -gt 1 ]]; then
    # The edited file alternates between two contents whose entries both
    # exist, so each edited run is a hit that must hash that one file.
    local edited=$app/src/d000/f00000.txt
    cp "$edited" "$SCRATCH/original"
    printf 'x' >>"$edited"
    retire "$app/dist" && (cd "$ws" && "${cachet_cmd[@]}" >/dev/null)
    cp "$SCRATCH/original" "$edited"
    sleep 1
    local e=$SCRATCH/e.ns u=$SCRATCH/u.ns
    : >"$e"; : >"$u"
    say "$shape: $ROUNDS alternating rounds of edited / unedited hits"
    for i in $(seq "$ROUNDS"); do
      if ((i % 2)); then printf 'x' >>"$edited"; else cp "$SCRATCH/original" "$edited"; fi
      retire "$app/dist"
      stamp; start=$NOW; (cd "$ws" && "${cachet_cmd[@]}" >/dev/null 2>"$SCRATCH/said"); stamp; echo $((NOW - start)) >>"$e"
      hit_or_die
      retire "$app/dist"
      stamp; start=$NOW; (cd "$ws" && "${cachet_cmd[@]}" >/dev/null 2>"$SCRATCH/said"); stamp; echo $((NOW - start)) >>"$u"
      hit_or_die
    done
    local json
    json=$(cd "$ws" && printf 'y' >>"$edited" && "$CACHET" key --json --workspace "$app" --output dist -- sh build.sh)
    local hashed from_memo
    hashed=$(printf '%s' "$json" | sed -n 's/.*"files_hashed": \([0-9]*\).*/\1/p')
    from_memo=$(printf '%s' "$json" | sed -n 's/.*"files_from_memo": \([0-9]*\).*/\1/p')
    local es us
    es=$(stats "$e"); us=$(stats "$u")
    r=$(ratio "${es%% *}" "${us%% *}")
    row "$label" "first run after editing one input ($hashed hashed, $from_memo from the memo)" "$(cell "$es")" "$(cell "$us"), the unedited hit" "${r}×" "≤ 1.1×" "$(at_most "$r" 1.1)"
  fi
  # The workspace stays until the script ends (see retire).
  mv "$SCRATCH/dist-copy" "$SCRATCH/dist-copy-$shape"
}

FLOORS=()
for shape in $SHAPES; do
  run_shape "$shape"
done
FLOOR_LINE=$(IFS=';'; printf '%s' "${FLOORS[*]}" | sed 's/;/; /g')

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT=$(
  cat <<EOF
$BEGIN_MARKER
Measured by \`scripts/bench-memo.sh\` at revision $REVISION on $(date -u '+%Y-%m-%d %H:%M UTC'):
$(machine "$SCRATCH"),
load average $LOAD before the report; turbo $TURBO_VERSION (its native binary).
Each cell is the median of $ROUNDS alternating rounds, with the range in
parentheses; the ratio is of the medians. Every hit starts with the task's
200 outputs removed; inputs are committed to git (turbo hashes through it).

| shape | what | cachet | compared with | ratio | target | met |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")

A command that does nothing, \`(cd <workspace> && true)\`, timed the same
way in the same rounds (every figure above includes it): $FLOOR_LINE.
$END_MARKER
EOF
)
printf '%s\n' "$REPORT"
if [[ $OUTPUT != - ]]; then
  write_report "$OUTPUT" "$REPORT" "$BEGIN_MARKER" "$END_MARKER" "## The file-hash memo (issue #14)"
  say "wrote the report into $OUTPUT"
fi
