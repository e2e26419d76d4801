#!/usr/bin/env bash
# Download throughput of llm's Hub client against curl, on loopback.
#
# Serves a SIZE_MB random file (default 1024) as repo bench/big with
# hubbench (hubserver: the Hub's resolve endpoint redirecting to a second
# "CDN" listener), then alternates, REPS times (default 5), in swapped order:
#   curl -sSL -o FILE URL                     (one stream, no hashing)
#   hubbench pull (hub.Client.Pull)           (sha256 verified, chunked)
#   hubbench pull -chunk -1                   (one stream, sha256 verified)
# and prints the median wall time, MB/s and CPU seconds of each, and the
# ratio curl_time / llm_time (>= 0.95 is the target). Only 127.0.0.1 is used.
set -euo pipefail
SIZE_MB=${SIZE_MB:-1024}
REPS=${REPS:-5}
PORT=${PORT:-18090}
cd "$(dirname "$0")/../.."
TMP=$(mktemp -d)
cleanup() { [[ -n ${SRV:-} ]] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

go build -o "$TMP/hubbench" ./bench/hub/hubbench
mkdir -p "$TMP/tree/bench/big"
head -c $((SIZE_MB << 20)) /dev/urandom > "$TMP/tree/bench/big/big.gguf"
"$TMP/hubbench" serve -dir "$TMP/tree" -addr "127.0.0.1:$PORT" 2>"$TMP/serve.log" &
SRV=$!
URL="http://127.0.0.1:$PORT/bench/big/resolve/main/big.gguf"
for _ in $(seq 100); do curl -sf -o /dev/null -I "$URL" && break; sleep 0.1; done
cat "$TMP/tree/bench/big/big.gguf" > /dev/null # page cache

now() { date +%s.%N; }
calc() { awk "BEGIN {printf \"%.6f\", $1}"; }
run_curl() {
	sync
	local t0 t1
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$TMP/cpu" curl -sSL -o "$TMP/curl.out" "$URL"
	t1=$(now)
	echo "curl $(calc "$t1 - $t0") $(cat "$TMP/cpu")" >>"$TMP/results"
	rm -f "$TMP/curl.out"
}
run_llm() { # name, extra args
	sync
	local name=$1
	shift
	local t0 t1 out
	t0=$(now)
	out=$("$TMP/hubbench" pull -endpoint "http://127.0.0.1:$PORT" -cache "$TMP/cache" -ref bench/big "$@")
	t1=$(now)
	set -- $out
	echo "$name $(calc "$t1 - $t0") $3 $4" >>"$TMP/results"
	rm -rf "$TMP/cache"
}
: >"$TMP/results"
for i in $(seq "$REPS"); do
	if ((i % 2)); then
		run_curl; run_llm llm; run_llm llm-1stream -chunk -1
	else
		run_llm llm-1stream -chunk -1; run_llm llm; run_curl
	fi
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "file: ${SIZE_MB} MiB, $REPS reps, $(nproc) CPUs; medians:"
printf "%-13s %8s %9s %8s %8s\n" tool seconds MB/s user_s sys_s
for tool in curl llm llm-1stream; do
	t=$(awk -v k=$tool '$1==k {print $2}' "$TMP/results" | median)
	u=$(awk -v k=$tool '$1==k {print $3}' "$TMP/results" | median)
	s=$(awk -v k=$tool '$1==k {print $4}' "$TMP/results" | median)
	printf "%-13s %8.3f %9.1f %8.2f %8.2f\n" $tool "$t" "$(calc "$SIZE_MB * 1.048576 / $t")" "$u" "$s"
	eval "T_${tool//-/_}=$t"
done
printf "throughput ratio llm/curl: %.3f (chunked), %.3f (one stream)\n" \
	"$(calc "$T_curl / $T_llm")" "$(calc "$T_curl / $T_llm_1stream")"
echo "all runs (tool seconds user_s sys_s):"
cat "$TMP/results"
