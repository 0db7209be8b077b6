# meshconform — every target is one line; the work is in hack/*.sh.
.DEFAULT_GOAL := help
.PHONY: help build test e2e e2e-verify simulate bench lint clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/meshconform and bin/meshconform-agent
	hack/build.sh

test: ## gofmt, go vet and every test (Docker/kind tests use ../shared/testenv when present)
	hack/test.sh

e2e: ## kind + Istio + fixtures + the five suites live; writes reports/junit.xml and reports/summary.md
	hack/e2e.sh

e2e-verify: ## after make e2e: assert the report's shape (EXPECT=offline|local-istiod|masquerade|all-pass; local-istiod when MESHCONFORM_LOCAL_ISTIOD=1) and that nothing is left
	hack/e2e-verify.sh

simulate: ## the five suites against Istio's config generator, no cluster; writes reports/
	hack/simulate.sh

bench: ## the simulation benchmark (1,000 expectations x 1,000 ServiceEntries) and the fixtures start benchmark
	hack/bench.sh

lint: ## gofmt and go vet only
	hack/lint.sh

clean: ## remove bin/ and generated reports
	rm -rf bin reports/*.xml reports/*.md
