# runai-ldap-sync
#   make demo    start a local Samba AD + kube-apiserver, sync a sample, show the result
#   make test    install what the tests need, then unit + integration tests with -race
#   make build   build bin/runai-ldap-sync
#   make release every release artifact in dist/<version>/ (tag first: git tag v1.2.3)

SHELL   := /usr/bin/env bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The tools built from source; RUNAI_LDAP_SYNC_BIN_DIR (the tests' variable) points elsewhere.
BIN_DIR ?= $(or $(RUNAI_LDAP_SYNC_BIN_DIR),$(CURDIR)/.cache/bin)
LDFLAGS := -s -w -X main.version=$(VERSION)
K8S_VERSION := v1.37.2
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

export RUNAI_LDAP_SYNC_BIN_DIR := $(BIN_DIR)

UNIT_PKGS := ./config/... ./kube/... ./ldapsrc/... ./sync/... ./cmd/...

.PHONY: all build test unit integration lint deps check-fresh tools demo bench clean image promtool test-alerts helm chart chart-files test-chart release sbom-tool

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/runai-ldap-sync ./cmd/runai-ldap-sync

## deps: every Debian package the demo, tests and bench use (hack/deps.txt), then a check
## that the files the harness needs are there
deps:
	@hack/install-deps.sh

## check-fresh: prove the set-up from nothing: make deps's script in a minimal Debian root
## (debootstrap), then Samba AD and slapd start there (needs root; part of make test)
check-fresh:
	hack/fresh-machine-check.sh

## tools: etcd, kube-apiserver, kubectl, promtool, helm (3 and 4) and cyclonedx-gomod built from source (cached in .cache/bin)
tools: $(BIN_DIR)/etcd $(BIN_DIR)/kube-apiserver $(BIN_DIR)/kubectl $(BIN_DIR)/promtool $(BIN_DIR)/helm $(BIN_DIR)/helm4 $(BIN_DIR)/cyclonedx-gomod

$(BIN_DIR)/etcd: hack/tools/etcd/go.mod hack/tools/etcd/go.sum hack/tools/etcd/main.go
	@mkdir -p $(BIN_DIR)
	@echo "building etcd from source (first time: ~1 min)"
	cd hack/tools/etcd && go build -o $@ .

# Separate rules so `make demo` builds only what it runs; kubectl's build reuses the packages
# the apiserver's build compiled.
$(BIN_DIR)/kube-apiserver: hack/tools/kube/go.mod hack/tools/kube/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building kube-apiserver $(K8S_VERSION) from source (first time: ~8 min on 2 idle cores, ~25 min on busy ones; ~3 GB RAM)"
	cd hack/tools/kube && go build -ldflags '$(K8S_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(BIN_DIR)/kubectl: hack/tools/kube/go.mod hack/tools/kube/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building kubectl $(K8S_VERSION) from source"
	cd hack/tools/kube && go build -ldflags '$(K8S_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kubectl

## promtool: Prometheus' rule checker from source, for the alert tests (no service discovery)
promtool: $(BIN_DIR)/promtool

$(BIN_DIR)/promtool: hack/tools/promtool/go.mod hack/tools/promtool/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building promtool from source (first time: ~2-5 min)"
	cd hack/tools/promtool && go build -tags remove_all_sd -o $@ github.com/prometheus/prometheus/cmd/promtool

## helm: Helm 3 (.cache/bin/helm) and Helm 4 (.cache/bin/helm4) from source, for the chart tests
helm: $(BIN_DIR)/helm $(BIN_DIR)/helm4

HELM3_VERSION := $(shell awk '$$1 == "helm.sh/helm/v3" {print $$2}' hack/tools/helm/go.mod)
HELM4_VERSION := $(shell awk '$$1 == "helm.sh/helm/v4" {print $$2}' hack/tools/helm4/go.mod)

# Helm 3 learns its own version and the Kubernetes version it assumes for `helm template`
# (.Capabilities.KubeVersion) from ldflags, as its own Makefile sets them.
$(BIN_DIR)/helm: hack/tools/helm/go.mod hack/tools/helm/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building helm $(HELM3_VERSION) from source (first time: ~2-4 min)"
	cd hack/tools/helm && go build -ldflags '-s -w -X helm.sh/helm/v3/internal/version.version=$(HELM3_VERSION) -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37' -o $@ helm.sh/helm/v3/cmd/helm

$(BIN_DIR)/helm4: hack/tools/helm4/go.mod hack/tools/helm4/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building helm $(HELM4_VERSION) from source (first time: ~2-4 min)"
	cd hack/tools/helm4 && go build -ldflags '-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM4_VERSION)' -o $@ helm.sh/helm/v4/cmd/helm

## chart: dist/runai-ldap-sync-<version>.tgz, the Helm chart with version and appVersion set from
## VERSION (a tag v1.2.3 gives chart 1.2.3 and appVersion v1.2.3, the image tag; an untagged
## commit gives 0.0.0-g<describe>), after `helm lint --strict`
DIST_DIR ?= $(CURDIR)/dist
CHART_DIR := deploy/chart/runai-ldap-sync
CHART_VERSION = $(shell v='$(patsubst v%,%,$(VERSION))'; if [[ "$$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then echo "$$v"; else echo "0.0.0-g$$v"; fi)

chart: $(BIN_DIR)/helm
	@mkdir -p $(DIST_DIR)
	$(BIN_DIR)/helm lint --strict -n runai $(CHART_DIR)
	$(BIN_DIR)/helm package $(CHART_DIR) --version '$(CHART_VERSION)' --app-version '$(VERSION)' -d $(DIST_DIR)

## chart-files: refresh the chart's copies of the base's alert rules, dashboard and example
## project template (the chart cannot read files outside its directory; a test keeps them equal)
chart-files:
	cp deploy/prometheusrule.yaml $(CHART_DIR)/files/prometheusrule.yaml
	cp deploy/dashboards/runai-ldap-sync.json $(CHART_DIR)/files/dashboard.json
	cp deploy/components/provisioning/project-template.yaml $(CHART_DIR)/files/project-template.yaml
	cp deploy/admission-policy.yaml $(CHART_DIR)/files/admission-policy.yaml

## test-chart: the chart with Helm 3 and 4 (lint, schema, equality with deploy/, alerts), then
## installed on a real kube-apiserver with the daemon syncing Samba through its ServiceAccount
test-chart: deps tools
	go test -count=1 -run 'TestChart' ./integration/deploy/
	go test -race -count=1 -p 1 -run 'TestChart' ./integration/

## test-alerts: `promtool test rules` on deploy/alerts_test.yaml, plus the dashboard's queries
## (also run by `make integration`)
test-alerts: $(BIN_DIR)/kubectl $(BIN_DIR)/promtool
	go test -count=1 -run 'TestAlert|TestDashboard|TestEveryMetric' ./integration/deploy/

## image: OCI image tarball in dist/ without Docker (static binary, CA bundle, user 65532)
image:
	VERSION=$(VERSION) hack/image.sh

## sbom-tool: cyclonedx-gomod (CycloneDX's SBOM generator for Go) from source, for make release
sbom-tool: $(BIN_DIR)/cyclonedx-gomod

$(BIN_DIR)/cyclonedx-gomod: hack/tools/sbom/go.mod hack/tools/sbom/go.sum
	@mkdir -p $(BIN_DIR)
	@echo "building cyclonedx-gomod from source (first time: ~1 min)"
	cd hack/tools/sbom && go build -o $@ github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod

## release: every release artifact in dist/<version>/, without Docker: static binaries for
## linux/amd64 and linux/arm64, the multi-arch OCI image archive, the packaged chart, a
## CycloneDX SBOM of the binary's modules, and SHA256SUMS over them. The version is the git
## tag (git tag v1.2.3 first; a tag that is not vMAJOR.MINOR.PATCH[-pre] is refused) and
## goes into the binaries (`version`), the image's labels and ref name, and the chart's
## version and appVersion (the image tag it defaults to). Checked by integration/release.
RELEASE_ARCHES := amd64 arm64
RELEASE_DIR ?= $(DIST_DIR)/$(VERSION)

release: $(BIN_DIR)/helm $(BIN_DIR)/cyclonedx-gomod
	@if git describe --tags --exact-match >/dev/null 2>&1; then \
		[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "release: tag $(VERSION) is not semver (vMAJOR.MINOR.PATCH)"; exit 1; }; \
	else echo "release: warning: HEAD is not a tag; building $(VERSION), not a release"; fi
	rm -rf '$(RELEASE_DIR)' && mkdir -p '$(RELEASE_DIR)'
	for arch in $(RELEASE_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o '$(RELEASE_DIR)/runai-ldap-sync-$(VERSION)-linux-'$$arch ./cmd/runai-ldap-sync || exit 1; \
	done
	VERSION='$(VERSION)' GOARCHES='$(RELEASE_ARCHES)' DIST_DIR='$(RELEASE_DIR)' hack/image.sh
	$(MAKE) --no-print-directory chart VERSION='$(VERSION)' DIST_DIR='$(RELEASE_DIR)'
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(BIN_DIR)/cyclonedx-gomod app -json -licenses -std -noserial \
		-main cmd/runai-ldap-sync -output '$(RELEASE_DIR)/runai-ldap-sync-$(VERSION).cdx.json' .
	cd '$(RELEASE_DIR)' && sha256sum runai-ldap-sync-* > SHA256SUMS && cat SHA256SUMS

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

unit:
	go test -race -count=1 $(UNIT_PKGS)

## integration: real Samba AD DC, OpenLDAP, etcd and kube-apiserver. Samba's
## ports are fixed, so these packages run one at a time (-p 1).
integration: deps tools
	go test -race -count=1 -p 1 -timeout 60m ./integration/...

test: deps tools lint unit integration check-fresh

## demo: needs only etcd and kube-apiserver (no kubectl, no promtool)
demo: deps $(BIN_DIR)/etcd $(BIN_DIR)/kube-apiserver
	go run ./hack/demo

## bench: 100,000 users / 5,000 projects against real slapd + kube-apiserver;
## prints a table and writes docs/performance.md (BENCH_FLAGS=-users 2000 ... for a quick look;
## BENCH_FLAGS='-users 300000 -ad-users 0 -out /tmp/bench-300k.md' for the growth run the doc records;
## -profile-dir DIR for CPU/allocation profiles of the steady-state cycle); ends with a verdict line
bench: deps tools
	go run ./hack/bench $(BENCH_FLAGS)
	go test -run '^$$' -bench . -benchmem ./sync/...

clean:
	rm -rf bin .cache
