#!/usr/bin/env bash
# `make fuzz-smoke`: each fuzz target for FUZZ_SECONDS over its committed corpus, failing on a
# crash (fuzz/README.md). Installs what it needs when missing: a minimal nightly toolchain and
# the pinned cargo-fuzz; quick when both are there.
#
# The committed corpus is only read: libFuzzer writes what it finds to a scratch corpus in a
# temporary folder (the first corpus argument is the one it writes to), so a run never dirties
# the work tree. Crashes land in fuzz/artifacts/<target>/ (git-ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-event_parser identity_parser query_string}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cargo_fuzz_version="0.13.2"
# A prefix for the cargo commands that build (e.g. `flock <file>` where builds share a machine).
read -r -a cargo_prefix <<<"${FUZZ_CARGO_PREFIX:-}"

started=$SECONDS
phase_started=$SECONDS
timings=()
phase() {
    timings+=("$1 $((SECONDS - phase_started))s")
    phase_started=$SECONDS
}

# RUSTUP_AUTO_INSTALL=0 may be set, and an installed nightly is kept as it is (no update: a
# smoke run needs a nightly, not the newest one).
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    if ! rustup toolchain install "$toolchain" --profile minimal; then
        # No nightly and none to download: the stable compiler, told to accept the nightly
        # flags cargo-fuzz passes (RUSTC_BOOTSTRAP), builds the same instrumented targets.
        echo "fuzz-smoke: no $toolchain toolchain could be installed; using stable with RUSTC_BOOTSTRAP=1" >&2
        toolchain=stable
        export RUSTC_BOOTSTRAP=1
    fi
fi
echo "fuzz-smoke: $(rustup run "$toolchain" rustc --version)"
phase toolchain

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    "${cargo_prefix[@]}" cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
phase cargo-fuzz

# Without a sanitizer: the code under test forbids `unsafe`, and ASan would double the build
# and halve the executions. Debug assertions (and so overflow checks) stay on: an overflow
# is a bug the fuzzer must report.
fuzz=(cargo "+$toolchain" fuzz)
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions --codegen-units 16 --target-dir fuzz/target)
# Every target in one build (one wait for the prefix's lock; they share all but the last link).
env -u CARGO_TARGET_DIR "${cargo_prefix[@]}" "${fuzz[@]}" build "${flags[@]}"
phase build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
# libFuzzer prints a line per new input (thousands a minute): its output goes to a log, of
# which a run shows the final stats, or the last lines (the crash and its input) on failure.
# shellcheck disable=SC2086 # the target list is split on purpose
for target in $targets; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    echo "fuzz-smoke: $target for ${seconds}s over fuzz/corpus/$target ($(ls "fuzz/corpus/$target" | wc -l) inputs)"
    if env -u CARGO_TARGET_DIR "${fuzz[@]}" run "${flags[@]}" "$target" \
        "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::(average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" | sed 's/^/    /'
    else
        grep -m1 -A2 'panicked at' "$log" || true
        tail -n 40 "$log"
        failed+=("$target")
    fi
    phase "$target"
done

echo "fuzz-smoke: $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'); total $((SECONDS - started))s"
if ((${#failed[@]})); then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in fuzz/artifacts/; fuzz/README.md tells how to replay one)" >&2
    exit 1
fi
echo "fuzz-smoke: no crash in $(wc -w <<<"$targets") targets"
