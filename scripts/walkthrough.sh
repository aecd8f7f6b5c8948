#!/usr/bin/env bash
# README.md's "Three nodes on one machine", verbatim: the lines between the two markers are the
# README's block (scripts/run-walkthrough checks that they match, then runs this file from the
# repository root stopping at the first failing command; CI does so through scripts/test).
# --- README begin ---
cargo build --release -p lien && export PATH="$PWD/target/release:$PATH"
lien --home /tmp/lien-a daemon --listen /ip4/127.0.0.1/tcp/4101 --api 127.0.0.1:4201 2>/tmp/lien-a.log &
A=$(lien --home /tmp/lien-a status --wait 60 | awk '/^listen:/ {print $2}')
lien --home /tmp/lien-b daemon --listen /ip4/127.0.0.1/tcp/4102 --api 127.0.0.1:4202 --bootstrap "$A" 2>/tmp/lien-b.log &
lien --home /tmp/lien-c daemon --listen /ip4/127.0.0.1/tcp/4103 --api 127.0.0.1:4203 --bootstrap "$A" 2>/tmp/lien-c.log &
lien --home /tmp/lien-b status --wait 60 && lien --home /tmp/lien-c status --wait 60

# publish on A: the last line of stdout is the manifest id
mkdir -p /tmp/census && seq 1 200000 > /tmp/census/numbers.csv
ID=$(lien --home /tmp/lien-a publish /tmp/census --name census-2024 --title "Census 2024" --keyword population | tail -1)
PUB=$(lien --home /tmp/lien-a status | awk '/^publisher:/ {print $2}')

# get on C by name (or by id: lien get $ID -o ...), check the copy, search
lien --home /tmp/lien-c get "$PUB/census-2024" -o /tmp/census-copy
cmp /tmp/census/numbers.csv /tmp/census-copy/numbers.csv && echo "identical copy"
lien --home /tmp/lien-c search population
curl -fsS -r 0-99 http://127.0.0.1:4202/d/$ID/numbers.csv; echo   # B's gateway fetches on demand, serves a range
curl -fsS http://127.0.0.1:4203/metrics | grep '^lien_bulk_bytes_in_total'   # C's chunks took the fast path

kill %1 %2 %3
# --- README end ---
