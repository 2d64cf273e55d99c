# Shared by the benchmark scripts (sourced, never run): the statistics and
# the Markdown they report with, so that every table in BENCHMARKS.md
# computes a median, a range and a ratio the same way.

# stamp: sets NOW to the wall clock in nanoseconds (microsecond steps)
# without starting a process: bash 5's EPOCHREALTIME, so that no figure
# includes the millisecond or two that forking `date` costs.
[[ -n ${EPOCHREALTIME:-} ]] || { echo "the benchmarks need bash 5 (EPOCHREALTIME)" >&2; exit 1; }
stamp() {
  local t=${EPOCHREALTIME//[.,]/}
  NOW=$((10#$t * 1000))
}

# build_release_cachet: builds `cachet` in release mode and sets TARGET_DIR
# and CACHET (its path); the caller defines `say` and `die`, and REPO.
build_release_cachet() {
  say "building cachet in release mode"
  cargo build --release -p cachet >&2
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [[ -n $TARGET_DIR ]] || TARGET_DIR=$REPO/target
  CACHET=$TARGET_DIR/release/cachet
  [[ -x $CACHET ]] || die "the release build did not produce $CACHET"
}

stats() { # stats FILE of nanosecond figures -> "median min max" in seconds
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.6f %.6f %.6f\n", m / 1e9, v[1] / 1e9, v[NR] / 1e9 }'
}
fmt() { awk -v s="$1" 'BEGIN { if (s >= 1) printf "%.2f s", s; else printf "%.1f ms", s * 1000 }'; }
cell() { # cell "median min max" -> "M (MIN … MAX)"
  local m lo hi
  read -r m lo hi <<<"$1"
  printf '%s (%s … %s)' "$(fmt "$m")" "$(fmt "$lo")" "$(fmt "$hi")"
}
ratio() { # ratio A B -> A / B with two decimals, or nothing
  [[ -z $1 || -z $2 ]] || awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}
at_most() { # at_most VALUE LIMIT -> yes / **no** / n/a (nothing measured)
  if [[ -z $1 ]]; then
    echo "n/a"
  else
    awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "**no**" }'
  fi
}

ROWS=()
row() { ROWS+=("| $(printf '%s | ' "$@")"); }

machine() { # one line: cores, CPU, memory, the filesystem of $1
  local cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  printf '%s × %s, %s, %s' "$(nproc)" "$cpu" \
    "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" "$(stat -f -c %T "$1")"
}

# write_report FILE REPORT BEGIN END HEADING: puts REPORT (which starts with
# BEGIN and ends with END) into FILE in place of the previous one, or
# appends it under HEADING the first time.
write_report() {
  local file=$1 report=$2 begin=$3 end=$4 heading=$5
  local tmp
  tmp=$(mktemp)
  printf '%s\n' "$report" >"$tmp"
  if grep -q "$begin" "$file" 2>/dev/null; then
    python3 - "$file" "$tmp" "$begin" "$end" <<'PY'
import sys
path, report, begin, end = sys.argv[1:5]
text = open(path).read()
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + open(report).read().rstrip("\n") + tail)
PY
  else
    printf '\n%s\n\n%s\n' "$heading" "$report" >>"$file"
  fi
  rm -f "$tmp"
}
