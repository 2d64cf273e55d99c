#!/bin/sh
# A stand-in for a slow build step: it "compiles" src/*.txt into
# out/greeting.txt. The sleep makes the difference between a miss (the
# script runs) and a hit (cachet restores its outputs) easy to see.
set -eu
echo "building out/greeting.txt from $(ls src | wc -l | tr -d ' ') sources..."
sleep 1
mkdir -p out
cat src/*.txt > out/greeting.txt
echo "done: $(wc -c < out/greeting.txt | tr -d ' ') bytes"
