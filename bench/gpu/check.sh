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
# Logs go to $OUT (or /tmp/llm-gpu-check); a short table is printed last.
set -uo pipefail
OUT=${OUT:-/tmp/llm-gpu-check}
mkdir -p "$OUT"
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
status_build=fail status_ref=fail status_gpu=skipped status_cpu=skipped build_s=-

for f in bin/llm .gpu/ggml/src/CMakeLists.txt .gpu/llama-commit .gpu/stories260K.gguf .gpu/expected.txt .gpu/prompt.txt; do
	[ -e "$f" ] || { echo "check: $f is missing: run make gpu-check-prepare first" >&2; exit 1; }
done
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 1)
echo "GPU: $gpu"
nvcc --version | tail -n 1
echo "CPU: $(nproc) cores"

# 1. The CUDA backend, for this GPU's architecture only.
b0=$(date +%s)
if cmake -S backends -B build/cuda -G Ninja -DGGML_SRC="$PWD/.gpu/ggml" -DLLM_BACKEND=cuda \
		-DCMAKE_CUDA_ARCHITECTURES=native >"$OUT/cmake.log" 2>&1 &&
	cmake --build build/cuda --target ggml-cuda -j "$(nproc)" >>"$OUT/cmake.log" 2>&1; then
	build_s=$(( $(date +%s) - b0 ))
	mkdir -p lib && cp -P build/cuda/lib/libggml-base.so* build/cuda/lib/libggml-cuda.so lib/ &&
		cp .gpu/llama-commit lib/ggml-backends.commit && status_build=ok
	echo "build: ${build_s}s"
else
	build_s=$(( $(date +%s) - b0 ))
	echo "build failed after ${build_s}s:"; tail -n 40 "$OUT/cmake.log"
fi

bin/llm version | tee "$OUT/version.txt"

# 2. The reference text, every layer on the GPU.
if [ "$status_build" = ok ]; then
	bin/llm generate -m .gpu/stories260K.gguf --temp 0 -n 64 --ngl all -t 1 "$(cat .gpu/prompt.txt)" \
		>"$OUT/story.txt" 2>"$OUT/story.err"
	if cmp -s "$OUT/story.txt" .gpu/expected.txt; then status_ref=ok; else
		status_ref=mismatch; echo "reference text differs:"; diff "$OUT/story.txt" .gpu/expected.txt | head; cat "$OUT/story.err"
	fi
fi

# 3. llm bench with and without offload. The synthetic model is created once.
bench() { # ngl
	bin/llm bench --synthetic llama-3-8b -q Q4_K_M -ngl "$1" -p 512 -n 128 -o md 2>"$OUT/bench-ngl$1.err" |
		tee "$OUT/bench-ngl$1.md"
}
if [ "$status_build" = ok ]; then
	bench 99 && status_gpu=ok || { status_gpu=fail; tail -n 20 "$OUT/bench-ngl99.err"; }
fi
bench 0 && status_cpu=ok || { status_cpu=fail; tail -n 20 "$OUT/bench-ngl0.err"; }

echo
echo "| check | result |"
echo "|---|---|"
echo "| GPU | $gpu |"
echo "| CUDA backend build | $status_build, ${build_s}s |"
echo "| stories260K -ngl all = reference | $status_ref |"
for n in 99 0; do
	grep -E '^\| .*(pp512|tg128)' "$OUT/bench-ngl$n.md" 2>/dev/null | sed "s/^/ngl $n: /"
done
echo "| llm bench -ngl 99 / -ngl 0 | $status_gpu / $status_cpu |"
echo "| total | $(elapsed)s |"
[ "$status_build" = ok ] && [ "$status_ref" = ok ] && [ "$status_gpu" = ok ] && [ "$status_cpu" = ok ]
