#!/usr/bin/env bash
# Gathers what the GPU machine lacks into build-carry/ (ignored by git through `build-*/`; about 12 MiB):
# the Debian 12 headers, shared libraries and CMake/pkg-config files of Abseil, nlohmann-json,
# SentencePiece, spdlog (+ fmt) and Google Benchmark, which a MOKE_CORE_ONLY build still finds, plus the
# LLaMA-2 tokenizer and the ZsRE records the edit stream uses. Run it here (CPU machine), then pass
# carry=["build-carry"] to the device run of tests/benchmarks/run_device_check.sh.
# Debian 12's libraries need glibc >= 2.36 and libstdc++ from GCC >= 12 on the GPU machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${MOKE_SHARED_DIR:-$ROOT/../shared}
C=$ROOT/build-carry
MA=x86_64-linux-gnu
rm -rf "$C"
mkdir -p "$C/prefix/include" "$C/prefix/lib/$MA/cmake" "$C/prefix/lib/$MA/pkgconfig" "$C/prefix/share/cmake" "$C/data"
cp -a /usr/include/absl /usr/include/nlohmann /usr/include/spdlog /usr/include/fmt /usr/include/benchmark \
      /usr/include/sentencepiece_processor.h "$C/prefix/include/"
cp -a /usr/lib/$MA/libabsl_*.so* /usr/lib/$MA/libsentencepiece.so* /usr/lib/$MA/libspdlog.so* /usr/lib/$MA/libfmt.so* \
      /usr/lib/$MA/libbenchmark*.so* /usr/lib/$MA/libbenchmark*.a "$C/prefix/lib/$MA/"
cp -a /usr/lib/$MA/cmake/absl /usr/lib/$MA/cmake/spdlog /usr/lib/$MA/cmake/fmt /usr/lib/$MA/cmake/benchmark "$C/prefix/lib/$MA/cmake/"
cp -a /usr/share/cmake/nlohmann_json "$C/prefix/share/cmake/"
# pkg-config file with a placeholder prefix; run_device_check.sh rewrites it where the carry lands.
sed 's|^prefix=.*|prefix=@CARRY_PREFIX@|' /usr/lib/$MA/pkgconfig/sentencepiece.pc > "$C/prefix/lib/$MA/pkgconfig/sentencepiece.pc.in"
cp "$SHARED/models/llama2-tokenizer/tokenizer.model" "$C/data/tokenizer.model"
cp "$SHARED/data/zsre/zsre_mend_eval_portability_gpt4.json" "$C/data/zsre.json"
du -sh "$C"
