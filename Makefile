# semkv — the two commands of the README:
#   make demo   set up, build, and run the main job on the default model (Gemma 3 270M)
#   make test   set up, build, and run every check CI runs
# Both start with scripts/setup.sh (system packages, the MLX wheel, mlx-lm).

CARGO ?= cargo
export SEMKV_REQUIRE_MODELS ?= 1

.PHONY: setup build demo test lint model bench

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

model: setup
	$(CARGO) run -q -p semkv-models --example pull -- --all

demo: build
	./target/release/semkv demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: setup lint model
	$(CARGO) test --workspace

bench: build
	$(CARGO) bench --bench engine_vs_mlxlm -- --model tests/fixtures/tiny-gemma3-bf16
