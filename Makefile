# shopstream: the one way to install, run and test everything.
#
#   make demo   install everything, start the stack, run the live pipeline, print where to look
#   make test   install what the tests need, start the services they use, run the whole suite
#
# Every step is idempotent: stamps skip work that is already done.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
say = @printf '\033[1;34m==>\033[0m %s\n' "$(1)"

# The monitoring test stack waits less than production's: scrapes every 2 s, and each alert
# rule's `for:` and Alertmanager's group_wait/group_interval at a quarter (15 s -> 4 s, 30 s ->
# 8 s). The fault tests wait for pages and resolutions through all of them; what they prove
# (a page reaches on-call, the part comes back, nothing is lost) does not depend on how long.
TEST_MONITORING := SHOPSTREAM_MONITORING_SCRAPE_INTERVAL_S=2 SHOPSTREAM_MONITORING_WAIT_SCALE=0.25
# The test suite's JVMs (Spark drivers and Thrift servers, Kafka, Connect) compile with C1
# alone: they live seconds to minutes, too short to repay C2's optimising compiles, and on two
# cores those compiles compete with the tests. Measured on the batch engine's test: 33 % less
# CPU and 17 % less time (docs/BENCHMARKS.md). C1 alone gets a 48 MB code cache by default,
# which Spark's generated code fills ("Out of space in CodeCache" killed a batch): give it
# tiered compilation's size. The JIT does not change what a test checks; production JVMs
# keep the default.
TEST_JVM := JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
# The tests' daily batches run on lakes of a few dozen to a few thousand rows: Spark's code
# generation costs more there than it saves (16 % less CPU on the batch engine's test).
TEST_BATCH := SHOPSTREAM_BATCH_CODEGEN=false
# No test of the shared stack waits on Prometheus (the monitoring module has its own stack),
# and every scrape of Kafka's and Connect's JMX exporters costs CPU the tests need: scrape it
# every 30 s.
TEST_SCRAPE := SHOPSTREAM_MONITORING_SCRAPE_INTERVAL_S=30
# The test suite runs against its own stack (state folder and ports), so it never disturbs
# a running demo and a demo never leaks into test results.
TEST_ENV := SHOPSTREAM_STATE_DIR=$(CURDIR)/.state-test \
	SHOPSTREAM_PG_PORT=55442 \
	SHOPSTREAM_OPS_PG_PORT=55443 \
	SHOPSTREAM_KAFKA_PORT=19092 \
	SHOPSTREAM_KAFKA_CONTROLLER_PORT=19093 \
	SHOPSTREAM_CONNECT_PORT=18083 \
	SHOPSTREAM_CONNECT_METRICS_PORT=19404 \
	SHOPSTREAM_KAFKA_METRICS_PORT=19405 \
	SHOPSTREAM_ALERTS_ENGINE_METRICS_PORT=19403 \
	SHOPSTREAM_PROMETHEUS_PORT=19090 \
	SHOPSTREAM_PUSHGATEWAY_PORT=19091 \
	SHOPSTREAM_ALERTMANAGER_PORT=19095 \
	SHOPSTREAM_POSTGRES_EXPORTER_PORT=19187 \
	SHOPSTREAM_STREAMS_METRICS_PORT=19401 \
	SHOPSTREAM_ALERTS_HTTP_PORT=19402 \
	$(TEST_JVM) \
	$(TEST_BATCH) \
	$(TEST_SCRAPE)
# The live monitoring module kills Kafka and PostgreSQL and stops Connect, which every other
# stack test needs; it mostly waits (for Prometheus's rules and Alertmanager's grouping), so
# `make test` runs it beside them on a stack of its own: the same settings, its own state
# folder and ports (the later assignment of a variable wins), and the shorter waits above
# (only this module waits on Prometheus; the other stack scrapes every 30 s).
TEST_ENV_MONITORING := $(TEST_ENV) \
	$(TEST_MONITORING) \
	SHOPSTREAM_STATE_DIR=$(CURDIR)/.state-test-monitoring \
	SHOPSTREAM_PG_PORT=55452 \
	SHOPSTREAM_OPS_PG_PORT=55453 \
	SHOPSTREAM_KAFKA_PORT=19192 \
	SHOPSTREAM_KAFKA_CONTROLLER_PORT=19193 \
	SHOPSTREAM_CONNECT_PORT=18183 \
	SHOPSTREAM_CONNECT_METRICS_PORT=19504 \
	SHOPSTREAM_KAFKA_METRICS_PORT=19505 \
	SHOPSTREAM_ALERTS_ENGINE_METRICS_PORT=19503 \
	SHOPSTREAM_PROMETHEUS_PORT=19190 \
	SHOPSTREAM_PUSHGATEWAY_PORT=19191 \
	SHOPSTREAM_ALERTMANAGER_PORT=19195 \
	SHOPSTREAM_POSTGRES_EXPORTER_PORT=19287 \
	SHOPSTREAM_STREAMS_METRICS_PORT=19501 \
	SHOPSTREAM_ALERTS_HTTP_PORT=19502
MONITORING_TESTS := tests/integration/monitoring

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --- install --------------------------------------------------------------------------------

# System packages first (Maven among them), then the given targets side by side: the Python
# venv, the Maven jars and the Airflow venv do not depend on each other (their lines interleave).
install_with = $(MAKE) --no-print-directory system \
	&& $(MAKE) --no-print-directory -j$(words $(1)) --output-sync=line $(1)

.PHONY: install
install: ## Install everything: system packages, Python venv, JVM jars
	@$(call install_with,python jars)

.PHONY: system
system: ## PostgreSQL 15, Java 17, Maven and Prometheus from Debian's packages (only what is missing)
	$(call say,checking system packages (PostgreSQL 15, Java 17, Maven, Prometheus and its exporters))
	@missing=""; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15 postgresql-client-15"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	for p in prometheus prometheus-pushgateway prometheus-postgres-exporter prometheus-alertmanager; do \
	  [ -x /usr/bin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all present"; fi

# Debian's Chromium (and a font to draw text with) for the dashboard's browser tests and
# screenshots (tests/browser.py). Playwright drives it; Playwright's own browser download
# cannot reach its servers from these machines and is never used.
.PHONY: browser
browser: ## Chromium from Debian's packages, for the dashboard's browser tests (only if missing)
	$(call say,checking the test browser (Debian's chromium))
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "chromium present"; fi

.PHONY: python
python: $(VENV)/.installed ## The Python virtualenv with shopstream and its pinned dependencies

$(VENV)/.installed: pyproject.toml
	$(call say,creating the Python environment in $(VENV))
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(call say,installing Python dependencies (pyspark, delta-spark, dbt, great-expectations, ...))
	@$(BIN)/pip install --progress-bar off -e ".[dev]" | grep -E '^(Successfully|ERROR)' || true
	@$(BIN)/python -c "import pyspark, delta, confluent_kafka, psycopg, dbt.version, fastapi, great_expectations, plotly; print('python deps ok: pyspark', pyspark.__version__)"
	@touch $@

.PHONY: jars
jars: jvm/lib/.resolved ## JVM jars (Kafka, Connect, Debezium, Spark Kafka source, Delta) via Maven

jvm/lib/.resolved: jvm/pom.xml jvm/kafka/pom.xml jvm/debezium/pom.xml jvm/spark/pom.xml jvm/agents/pom.xml
	$(call say,resolving JVM jars from Maven Central into jvm/lib)
	@rm -rf jvm/lib
	@mvn -B -ntp -q -f jvm/pom.xml package
	@for d in kafka plugins/debezium-postgres spark agents; do \
	  printf '  %-28s %3s jars\n' "jvm/lib/$$d" "$$(ls jvm/lib/$$d/*.jar | wc -l)"; done
	@touch $@

# The benchmarks' HTTP load generator (autocannon, from the npm registry, pinned by the lock).
.PHONY: bench-tools
bench-tools: bench/node_modules/.installed ## autocannon for bench/api_load.py (npm)

bench/node_modules/.installed: bench/package.json bench/package-lock.json
	$(call say,installing the benchmark load generator (autocannon) into bench/node_modules)
	@npm ci --prefix bench --no-audit --no-fund --loglevel=error
	@touch $@

# The s3a:// lake's jars (hadoop-aws and the ~690 MB AWS SDK v2 bundle), kept out of `install`
# and `test`: only an s3a:// lake needs them. They go to jvm/lib/spark-s3, which `make jars`
# wipes with the rest of jvm/lib, so the stamp lives there and this re-runs after it.
.PHONY: install-s3
install-s3: jvm/lib/spark-s3/.resolved ## JVM jars for an s3a:// lake (hadoop-aws, AWS SDK bundle; ~690 MB)

jvm/lib/spark-s3/.resolved: jvm/lib/.resolved jvm/pom.xml jvm/spark-s3/pom.xml
	$(call say,resolving the s3a jars (hadoop-aws + AWS SDK bundle, ~690 MB) into jvm/lib/spark-s3)
	@rm -rf jvm/lib/spark-s3
	@mvn -B -ntp -q -f jvm/pom.xml -Ps3 -pl spark-s3 package
	@printf '  %-28s %3s jars, %s\n' jvm/lib/spark-s3 "$$(ls jvm/lib/spark-s3/*.jar | wc -l)" \
	  "$$(du -sh jvm/lib/spark-s3 | cut -f1)"
	@touch $@

# Apache Airflow for the daily batch DAG (dags/), in its own virtualenv: apache-airflow-core 3.3
# needs fastapi<0.137 and shopstream pins fastapi 0.163, so they cannot share $(VENV). The pins
# live in one place, pyproject's `airflow` extra; shopstream is not installed here (the DAG only
# calls its CLI).
AIRFLOW_VENV := .venv-airflow
# Every transitive dependency pinned (pip's constraints file, frozen from a PyPI resolution):
# a new release of any of Airflow's ~130 dependencies cannot change what `make airflow` builds.
AIRFLOW_CONSTRAINTS := dags/constraints.txt
AIRFLOW_PINS = $(shell $(PYTHON) -c 'import tomllib; \
  print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["airflow"])')

.PHONY: airflow
airflow: $(AIRFLOW_VENV)/.installed ## Apache Airflow 3 in .venv-airflow, to test dags/ (~290 MB)

$(AIRFLOW_VENV)/.installed: pyproject.toml $(AIRFLOW_CONSTRAINTS)
	$(call say,creating the Airflow environment in $(AIRFLOW_VENV): $(AIRFLOW_PINS))
	@[ -x $(AIRFLOW_VENV)/bin/python ] || $(PYTHON) -m venv $(AIRFLOW_VENV)
	@$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip setuptools wheel
	@$(AIRFLOW_VENV)/bin/pip install --progress-bar off --constraint $(AIRFLOW_CONSTRAINTS) \
	  $(AIRFLOW_PINS) \
	  | { grep -E '^(Successfully|ERROR)' || true; }
	@$(AIRFLOW_VENV)/bin/python -c "import airflow.providers.standard.operators.bash, airflow.sdk; \
	  print('airflow ok:', airflow.__version__)"
	@touch $@

# --- run ------------------------------------------------------------------------------------

.PHONY: up
up: install ## Start PostgreSQL, Kafka and Connect (idempotent)
	@$(BIN)/shopstream up

.PHONY: down
down: ## Stop the local stack (data is kept)
	@$(BIN)/shopstream down

.PHONY: demo
demo: install ## Install, start the stack and the live pipeline, print where to look
	$(call say,starting the local stack)
	@$(BIN)/shopstream up
	$(call say,applying the Debezium connectors)
	@$(BIN)/shopstream connectors apply
	$(call say,starting the workload + streaming pipeline + alert engine + API in the background)
	@$(BIN)/shopstream demo start
	@$(BIN)/shopstream demo info

# --- quality --------------------------------------------------------------------------------

.PHONY: lint
lint: python ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@$(BIN)/mypy dags

.PHONY: test
test: ## Install, start the test stack, run the whole suite
	@$(call install_with,python jars install-s3 airflow browser)
	$(call say,starting fresh test stacks (state in .state-test and .state-test-monitoring))
	@# Fresh every run: the integration tests replay the whole Kafka log, and a log kept
	@# from earlier runs would make them slower each time (and differ from CI's clean clone).
	@$(TEST_ENV) $(BIN)/shopstream reset --yes
	@$(TEST_ENV_MONITORING) $(BIN)/shopstream reset --yes
	$(call say,then the tests: [rest] and [s3] beside the stack's [stack] and [monitoring])
	@# [rest] starts first (it needs no stack), then the stack comes up and two more pytest
	@# processes run beside it. [stack]: the integration tests that use the shared
	@# stack (marked `stack` by tests/integration/conftest.py) stop, kill and fill its parts,
	@# so they run in turn; they spend much of their time waiting (Kafka, a driver's restart),
	@# so their CPU-bound daily batches run last, when [rest] has ended (CPU_BOUND_LAST
	@# there). [monitoring]: the live monitoring module, which kills the stack's parts, on
	@# its own stack (TEST_ENV_MONITORING; its `stack` fixture starts it). [rest]: the unit
	@# tests and the integration tests that need no running service, on two workers
	@# (pytest-xdist, one Spark session each), a whole file to a worker: a module's fixture
	@# (test_dbt_project's three dbt builds, a Spark lake) runs once, not once on each worker;
	@# the integration files first, in their order (xdist would put files with few tests
	@# last), so that the long ones (dbt, the cluster, the batch engine) start side by side
	@# and the short unit files fill in around them.
	@# Then [s3], after [rest] and still beside [stack] (which takes longer): the s3a lake
	@# needs a Spark session of its own (jars are fixed at a session's start), so a pytest
	@# process of its own; it needs no stack either (moto on 127.0.0.1). `make test-s3` runs
	@# the same alone.
	@# The stacks it started are stopped at the end, pass, fail or interrupt, also when they
	@# did not come up whole (about 1.5 GB each otherwise); pytest's exit 5 (no test
	@# collected) fails.
	@set +e; \
	trap '$(TEST_ENV) $(BIN)/shopstream down >/dev/null; \
	  $(TEST_ENV_MONITORING) $(BIN)/shopstream down >/dev/null' EXIT; \
	{ $(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder \
	  -m 'not stack and not s3' tests/integration tests/unit $(PYTEST_ARGS) 2>&1 \
	  | sed -u 's/^/[rest] /'; rest=$$?; \
	  $(TEST_ENV) $(BIN)/pytest -m s3 $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[s3] /'; s3=$$?; \
	  exit $$(( rest == 5 || s3 == 5 ? 5 : rest ? rest : s3 )); } & rest=$$!; \
	$(TEST_ENV) $(BIN)/shopstream up; up=$$?; if [ $$up -ne 0 ]; then wait $$rest; exit $$up; fi; \
	{ $(TEST_ENV) $(BIN)/pytest tests/integration --ignore=$(MONITORING_TESTS) \
	  -m 'stack and not s3' $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[stack] /'; } & stack=$$!; \
	{ $(TEST_ENV_MONITORING) $(BIN)/pytest $(MONITORING_TESTS) -m 'stack and not s3' \
	  $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[monitoring] /'; } & monitoring=$$!; \
	wait $$rest; rest=$$?; wait $$stack; stack=$$?; wait $$monitoring; monitoring=$$?; \
	for rc in $$stack $$monitoring $$rest; do \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; \
	done; \
	for rc in $$stack $$monitoring $$rest; do if [ $$rc -ne 0 ]; then exit $$rc; fi; done

.PHONY: test-unit
test-unit: install airflow ## Only the unit tests: no service, two workers (at most 2 minutes here)
	$(call say,running the unit tests (no service needed))
	@set +e; $(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile tests/unit $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no unit tests" >&2; exit 1; fi; \
	exit $$rc

.PHONY: test-s3
test-s3: install install-s3 ## Only the s3a:// lake against a local S3 server (moto); needs install-s3
	$(call say,running the s3a lake tests (moto on 127.0.0.1, no stack needed))
	@set +e; $(TEST_ENV) $(BIN)/pytest -m s3 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no s3 tests" >&2; exit 1; fi; \
	exit $$rc

.PHONY: clean
clean: ## Remove the virtualenv and resolved jars (state is kept; see `shopstream reset`)
	rm -rf $(VENV) jvm/lib
