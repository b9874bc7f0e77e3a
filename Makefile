# The gates and the two set-up commands. CI (.ci/run) runs `make lint` and `make test`.
CARGO ?= cargo

.PHONY: run run-sidecar test test-fast test-cluster cluster cluster-bins lint build release image deps testssl clean-dev chart-check manifests fuzz bench bench-proxy bench-image bench-scan bench-ab bench-reload bench-db-rotation bench-burst bench-instructions bench-k8s soak

## make run: the service on its local default (dev PKI, TLS PostgreSQL on 26257, https://localhost:8443)
run: deps build
	scripts/run-dev.sh

## make run-sidecar: the example FastAPI app (examples/fastapi) behind tlsward proxy and its
## database socket, against the same dev PostgreSQL (https://localhost:8443)
run-sidecar: deps build
	scripts/run-sidecar.sh

TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE_ARCHIVE = $(TARGET_DIR)/image/tlsward-$(VERSION).oci.tar

## make test: every test: the cargo tests (the container tests run the image of `make image`),
## the chart checks, and the tests on a real one-node Kubernetes cluster (tests/cluster.rs).
## Installs what is missing (Debian packages: needs root; Go modules: scripts/cluster/build.sh).
test: deps image cluster-bins
	$(CARGO) test --locked --workspace --lib --bins --tests
	scripts/check-chart.sh
	$(MAKE) --no-print-directory test-cluster

## make test-fast: the cargo tests that need neither the image nor the cluster
test-fast:
	$(CARGO) test --locked --workspace --lib --bins \
		$(foreach t,$(filter-out container cluster,$(basename $(notdir $(wildcard tests/*.rs)))),--test $(t))

## make test-cluster: only the cluster tests, on a cluster started for them and torn down after
## (the image of `make image` and the binaries of scripts/cluster/build.sh must exist)
test-cluster:
	TLSWARD_IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) scripts/cluster/cluster.sh run "$$(mktemp -d)" \
		$(CARGO) test --locked --test cluster -- --test-threads $${CLUSTER_TEST_THREADS:-4}

## make cluster-bins: the cluster's binaries from the pinned Go modules (cached outside the repository)
cluster-bins: deps
	scripts/cluster/build.sh >/dev/null

## make cluster: the test cluster for a person, tlsward's image imported; Ctrl-C stops it
cluster: deps image cluster-bins
	mkdir -p .dev/cluster
	TLSWARD_IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) scripts/cluster/cluster.sh up .dev/cluster

## make lint: nothing outside the repository, imports only downwards (scripts/check-layers.py),
## at most 3 % of functions over 50 lines (scripts/check-function-length.py),
## formatting, clippy (also without the default legacy-tls feature), one crypto provider (no ring),
## `unsafe` allowed in src/edge/trim.rs only (the one malloc_trim call)
lint:
	scripts/check-standalone.sh
	python3 scripts/check-layers.py
	python3 scripts/check-function-length.py
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --lib --no-default-features -- -D warnings
	@if grep -rln 'allow(unsafe_code)' src | grep -vx 'src/edge/trim.rs'; then \
		echo "unsafe_code is allowed only in src/edge/trim.rs" >&2; exit 1; fi
	@if $(CARGO) tree --locked -i ring -e normal,build 2>/dev/null | grep -q '^ring'; then \
		echo "ring is in the dependency tree: keep aws-lc-rs as the only crypto provider" >&2; exit 1; fi

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

## make image: the OCI image with buildah FROM scratch (no Docker, no base image), plus an OCI archive
image: deps release
	scripts/image.sh

deps:
	scripts/deps.sh

## make bench: tlsward vs the seed's FastAPI app and nginx, side by side (bench/RESULTS.md)
bench: deps release
	bench/compare.sh

## make bench-proxy: tlsward proxy vs nginx and haproxy in front of one upstream (bench/proxy-results.md),
## the seed app behind tlsward proxy vs serving TLS itself (bench/proxy-e2e-results.md), and the database hop:
## tlsward's socket vs direct verify-full vs pgbouncer (bench/db-proxy-results.md); alternating rounds
bench-proxy: deps release
	bench/proxy.sh
	bench/proxy-e2e.sh
	bench/db-proxy.sh

## make bench-scan: tlsward scan vs testssl.sh, time and verdicts (bench/scan-results.md)
bench-scan: release
	bench/scan.sh

## make bench-image: image size and start-up to /readyz, container vs bare binary (bench/image-results.md)
bench-image: image
	bench/image.sh

## make bench-ab OLD=path NEW=path: two builds alternating on the API keep-alive row (bench/ab-api-results.md)
bench-ab: deps
	bench/ab-api.sh "$(OLD)" "$(NEW)"

## make bench-burst [SYSTEMS="old=PATH new=PATH"]: RSS per idle connection and after a burst closed (bench/burst-results.md)
bench-burst: release
	bench/burst.sh $(SYSTEMS)

## make bench-instructions [SYSTEMS="old=PATH new=PATH nginx"] [API=1]: user-space instructions per request
## under callgrind, noise-free (bench/instructions-results.md, -api-results.md; default: this build and nginx)
bench-instructions: deps release
	bench/instructions.sh $(or $(SYSTEMS),tlsward=$(or $(CARGO_TARGET_DIR),target)/release/tlsward nginx)

## make bench-reload: reload latency after kubelet's ..data swap (bench/reload-results.md)
bench-reload:
	$(CARGO) bench --locked --bench reload

## make bench-db-rotation: req/s and p99 while the DB client cert rotates every second (bench/db-rotation-results.md)
bench-db-rotation: deps
	$(CARGO) bench --locked --bench db_rotation

## make bench-k8s [K8S_BENCH_ROUNDS=6]: on the test cluster, Secret update → served p50/p99 with the
## Secret watch and with the kubelet's projection only (about a minute a round; bench/k8s-rotation-results.md)
bench-k8s: deps image cluster-bins
	TLSWARD_IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) scripts/cluster/cluster.sh run "$$(mktemp -d)" \
		$(CARGO) bench --locked --bench k8s_rotation

## make soak: SOAK_SECONDS (600) of load, rotations, DB faults and hostile clients at once (bench/soak-results.md)
soak: deps release
	$(CARGO) bench --locked --bench soak

## make manifests: charts/tlsward rendered with default values into manifests/tlsward.yaml
manifests:
	scripts/check-chart.sh --write-manifests

## make chart-check: helm lint and rendered-manifest assertions for charts/tlsward
chart-check:
	scripts/check-chart.sh

## make fuzz: the scanner's ServerHello/Alert parser under libFuzzer for FUZZ_SECONDS (60)
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run server_answer -- -max_total_time=$${FUZZ_SECONDS:-60}

## make testssl: testssl.sh (Debian) against a running `make run`
testssl:
	command -v testssl >/dev/null || (apt-get update -qq && apt-get install -y -qq testssl.sh >/dev/null)
	testssl --quiet --color 0 --protocols --vulnerable --std localhost:8443

clean-dev:
	-scripts/pg.sh stop .dev/pg
	rm -rf .dev
