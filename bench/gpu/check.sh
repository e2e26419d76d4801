#!/usr/bin/env bash
# One-shot GPU check for a machine with an NVIDIA GPU, the CUDA toolkit and
# CMake, but no Go and no network. Prepare it on a build machine first:
#
#   make gpu-check-prepare     # portable bin/llm; ggml sources, model and
#                              # expected text in .gpu/
#
# then, on the GPU machine, from the repository root (with bin/ and .gpu/):
#
#   bash bench/gpu/check.sh
#
# It builds the CUDA backend for the local GPU only, then runs bin/llm:
# stories260K fully offloaded must give the reference greedy text, and
# llm bench runs a synthetic Llama-3-8B Q4_K_M with and without offload.
# Then, with time left, the pipeline's continuous-batching benchmark (1, 4
# and 8 clients) on the same model, fully offloaded.
# Logs go to $OUT (or /tmp/llm-gpu-check), at most 8 files (what the device
# tool brings back); a short table is printed last.
#
# A dry run on a machine without a GPU builds ggml's BLAS backend instead and
# benchmarks a small model through every step:
#
#   CHECK_BACKEND=blas SYNTH=smollm-135m QUANT=Q4_0 P=64 N=16 bash bench/gpu/check.sh
#
# For a short lease: CUDA_FA=OFF (no flash-attention kernels: a faster
# build), SYNTH=tinyllama-1.1b QUANT=Q4_0 (a model made in seconds) and
# CPU_REPS=2.
set -uo pipefail
BACKEND=${CHECK_BACKEND:-cuda}
SYNTH=${SYNTH:-llama-3-8b} QUANT=${QUANT:-Q4_K_M} P=${P:-512} N=${N:-128}
OUT=${OUT:-/tmp/llm-gpu-check}
mkdir -p "$OUT"
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
status_build=fail status_ref=skipped status_long=skipped status_gpu=skipped status_cpu=skipped build_s=-

for f in bin/llm .gpu/ggml/src/CMakeLists.txt .gpu/llama-commit .gpu/stories260K.gguf .gpu/expected.txt .gpu/prompt.txt; do
	[ -e "$f" ] || { echo "check: $f is missing: run make gpu-check-prepare first" >&2; exit 1; }
done
if [ "$BACKEND" = cuda ]; then
	# The CUDA toolkit, wherever this image keeps it, and its libraries at run time.
	if ! command -v nvcc >/dev/null; then
		for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && PATH="$d:$PATH" && break; done
	fi
	command -v nvcc >/dev/null || { echo "check: nvcc not found" >&2; exit 1; }
	cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
	export LD_LIBRARY_PATH="$cuda_root/lib64:$cuda_root/lib:${LD_LIBRARY_PATH:-}"
	gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
	[ -n "$gpu" ] || gpu="none that nvidia-smi reports"
	nvcc --version | tail -n 1
	# CUDA_FA=OFF leaves out the flash-attention kernels: a third of the
	# build (sm_90 with nvcc 11.8: 847 CPU-seconds without, 1263 with).
	# CUDA_ARCHITECTURES=90 (say) builds for a GPU that is not here: a
	# compile-only dry run, with the later steps reporting that no device is.
	cmake_extra=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-native}" -DLLM_CUDA_FA="${CUDA_FA:-ON}")
else
	gpu="none (dry run with the $BACKEND backend)"
	cmake_extra=()
fi
echo "GPU: $gpu"
echo "CPU: $(nproc) cores"

# 1. The backend, for this GPU's architecture only.
b0=$(date +%s)
if cmake -S backends -B "build/$BACKEND" -G Ninja -DGGML_SRC="$PWD/.gpu/ggml" -DLLM_BACKEND="$BACKEND" \
		"${cmake_extra[@]}" >"$OUT/cmake.log" 2>&1 &&
	cmake --build "build/$BACKEND" --target "ggml-$BACKEND" -j "$(nproc)" >>"$OUT/cmake.log" 2>&1; then
	build_s=$(( $(date +%s) - b0 ))
	rm -rf lib && mkdir -p lib && cp -P "build/$BACKEND"/lib/libggml-base.so* "build/$BACKEND/lib/libggml-$BACKEND.so" lib/ &&
		cp .gpu/llama-commit lib/ggml-backends.commit && status_build=ok
	echo "build: ${build_s}s"
else
	build_s=$(( $(date +%s) - b0 ))
	echo "build failed after ${build_s}s:"; tail -n 40 "$OUT/cmake.log"
fi

version=$(bin/llm version)
echo "$version" | tee -a "$OUT/cmake.log"

# The backend must have found a device: without one (no driver, a driver
# too old) llm would run every step on the CPU and they would pass.
if [ "$status_build" = ok ] && [ "$BACKEND" != blas ] && ! grep -q "^device .*(${BACKEND^^}, GPU)" <<<"$version"; then
	status_build="built, but no ${BACKEND^^} device"
fi

# 2. The reference text, every layer on the GPU.
if [ "$status_build" = ok ]; then
	bin/llm generate -m .gpu/stories260K.gguf --temp 0 -n 64 --ngl all -t 1 --verbose "$(cat .gpu/prompt.txt)" \
		>"$OUT/story.txt" 2>"$OUT/story.err"
	offloaded=$(grep -o "[0-9]* layers on GPUs" "$OUT/story.err" | head -n 1)
	if ! cmp -s "$OUT/story.txt" .gpu/expected.txt; then
		status_ref=mismatch; echo "reference text differs:"; diff "$OUT/story.txt" .gpu/expected.txt | head; tail -n 20 "$OUT/story.err"
	elif [ "$BACKEND" != blas ] && { grep -q "running on the CPU" "$OUT/story.err" || [[ "$offloaded" != [1-9]* ]]; }; then
		status_ref="same text, but on the CPU"; grep "llm:" "$OUT/story.err"
	else
		status_ref="ok, $offloaded"
	fi
fi

# 2b. A prompt long enough (over 32 tokens) for the batched matrix path,
# every layer on the GPU, then the context freed: llm bench once crashed in
# llama_free after such a batch (CUDA's reset called on a freed backend;
# fixed in engine/bridge.c), and this separates that from the bench itself.
if [ "$status_build" = ok ]; then
	long=$(for i in 1 2 3 4 5 6 7 8; do printf 'Lily and Tom went to the park and played with a big red ball. '; done)
	if bin/llm generate -m .gpu/stories260K.gguf --temp 0 -n 8 --ngl all -t 1 "$long" >"$OUT/long.log" 2>&1; then
		status_long=ok
	else
		status_long="fail (exit $?)"; tail -n 15 "$OUT/long.log"
	fi
fi

# 3. llm bench with and without offload. The synthetic model is created once.
bench() { # ngl [more flags]
	local ngl=$1; shift
	echo "== llm bench -ngl $ngl $*" >>"$OUT/bench.err"
	bin/llm bench --synthetic "$SYNTH" -q "$QUANT" -ngl "$ngl" -p "$P" -n "$N" -o md "$@" 2>>"$OUT/bench.err" |
		tee "$OUT/bench-ngl$ngl.md"
}
if [ "$status_build" = ok ]; then
	bench 99 && status_gpu=ok || { status_gpu=fail; tail -n 20 "$OUT/bench.err"; }
fi
# The CPU run is the slow one: fewer repetitions when the build took long,
# so that the whole check stays inside 10 minutes.
reps=${CPU_REPS:-5}
[ "$(elapsed)" -gt 360 ] && reps=2
bench 0 -r "$reps" && status_cpu=ok || { status_cpu=fail; tail -n 20 "$OUT/bench.err"; }

# A crash in C leaves only addresses in Go's trace: when a bench failed and
# gdb is here, run a short one under gdb for the C backtrace.
if [ "$status_gpu" = fail ] || [ "$status_cpu" = fail ]; then
	# gdb, or cuda-gdb (a gdb too), which CUDA images carry instead.
	dbg=$(command -v gdb || command -v cuda-gdb)
	if [ -n "$dbg" ]; then
		ngl=99; [ "$status_gpu" = fail ] || ngl=0
		echo "== gdb: llm bench -ngl $ngl" >>"$OUT/bench.err"
		timeout 120 "$dbg" -q -batch -ex 'handle SIGURG SIGPIPE nostop noprint pass' -ex run -ex 'bt 30' -ex 'info threads' \
			--args bin/llm bench --synthetic "$SYNTH" -q "$QUANT" -ngl "$ngl" -p 64 -n 4 -r 1 -o md >"$OUT/gdb.tmp" 2>&1
		cat "$OUT/gdb.tmp" >>"$OUT/bench.err"
		grep -A 30 -E "^Thread .* received signal|^#0 " "$OUT/gdb.tmp" | head -40
		rm -f "$OUT/gdb.tmp"
	else
		echo "(no gdb or cuda-gdb here for a C backtrace)"
	fi
fi

# 4. Continuous batching where decoding is memory-bound: the pipeline's
# aggregate tokens/s with 1, 4 and 8 clients, every layer on the GPU (the
# test binary make gpu-check-prepare builds), when time is left.
status_batch=skipped
model=$(find "${XDG_CACHE_HOME:-$HOME/.cache}/llm/synth" -name "$SYNTH-$QUANT-*.gguf" 2>/dev/null | head -n 1)
if [ "$status_gpu" = ok ] && [ -x .gpu/llm.test ] && [ -n "$model" ] && [ "$(elapsed)" -lt 450 ]; then
	if LLM_BENCH_MODEL="$model" LLM_BENCH_NGL=99 LLM_BENCH_THREADS="$(nproc)" timeout 120 \
		.gpu/llm.test -test.run '^$' -test.bench AggregateTokens -test.benchtime 2x >"$OUT/batching.txt" 2>&1; then
		status_batch=ok
	else
		status_batch=fail; tail -n 15 "$OUT/batching.txt"
	fi
fi

# A dry run's backend must not stay where bin/llm loads backends from:
# the BLAS backend would take over the CPU's work (pp64 12x slower on a
# 2-core machine).
if [ "$BACKEND" != cuda ]; then
	rm -rf lib && echo "dry run: removed the $BACKEND backend from lib/"
fi

echo
echo "| check | result |"
echo "|---|---|"
echo "| GPU | $gpu |"
echo "| $BACKEND backend build | $status_build, ${build_s}s |"
echo "| stories260K -ngl all = reference | $status_ref |"
echo "| long prompt (batched), -ngl all | $status_long |"
for n in 99 0; do
	grep -E "^\| .*(pp$P|tg$N)" "$OUT/bench-ngl$n.md" 2>/dev/null | sed "s/^/ngl $n: /"
done
echo "| llm bench -ngl 99 / -ngl 0 (-r $reps) | $status_gpu / $status_cpu |"
awk 'match($0, /clients=[0-9]+/) { name = substr($0, RSTART, RLENGTH) }
	/tokens\/s/ { print "| batching, " name " | " $(NF-1) " tokens/s |" }' "$OUT/batching.txt" 2>/dev/null
echo "| batching benchmark | $status_batch |"
echo "| total | $(elapsed)s |"
[ "$status_build" = ok ] && [[ "$status_ref" = ok* ]] && [ "$status_gpu" = ok ] && [ "$status_cpu" = ok ]
