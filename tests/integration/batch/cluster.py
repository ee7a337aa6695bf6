"""Spark's own servers for the test that shows the batch on a distributed engine: a
standalone master with one worker (a ``spark://`` master URL) and a Spark Thrift server
(dbt's ``cluster`` target) whose executors run on that worker. Each is started from the
pyspark package and the project's jars (``jvm/lib/spark``, as every shopstream session has
them), waited for, and stopped with its whole process group. When one cannot start, the test
fails with its log, never skips.

The Thrift server's class (``spark-hive-thriftserver``) ships with pyspark 4.2 itself
(``pyspark/jars/spark-hive-thriftserver_2.13-4.2.0.jar``, the same version as the rest of
Spark), so nothing more is resolved from Maven Central for it: a second copy in
``jvm/lib/spark`` would only put the same classes twice on the class path.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyspark
import pytest

from shopstream.lake.spark import catalog_config, codegen_config, spark_jars
from shopstream.settings import Settings

SPARK_HOME = Path(pyspark.__file__).parent
#: The Thrift server's application name, as the master registers it.
THRIFT_APP = "shopstream-thrift-test"
#: JVM start, metastore schema and Thrift service on a busy 2-core machine.
START_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def _start(command: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPARK_HOME": str(SPARK_HOME), **env},
            # Its own process group: spark-class execs a JVM, which must go with it.
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _wait(
    what: str, process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]
) -> None:
    """Until ``ready()`` holds; fails with the log when the process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{_tail(log)}", pytrace=False)
        if time.monotonic() > deadline:
            waited = f"{START_TIMEOUT_S:.0f} s"
            pytest.fail(f"{what} not ready in {waited}:\n{_tail(log)}", pytrace=False)
        time.sleep(2)


def thrift_server_command(settings: Settings, port: int, master: str) -> list[str]:
    """spark-submit for a Spark Thrift server on 127.0.0.1:``port``, its executors from
    ``master``, with the batch session's Delta support and persistent catalog (``settings``'
    metastore and lake)."""
    jars = spark_jars(settings.jvm_lib_dir)
    options = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        **catalog_config(settings),
        # dbt's statements run here, so the batch's setting applies here.
        **codegen_config(settings.batch_codegen),
    }
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--master",
        master,
        "--name",
        THRIFT_APP,
        "--driver-memory",
        "1g",
        "--jars",
        ",".join(str(j) for j in jars),
        # The server runs statements on its own pool threads, whose class loader does not see
        # --jars ("Failed to find the data source: delta" from dbt's threads): the same jars
        # on the driver's class path too. They are only the jars pyspark lacks, without
        # transitives (jvm/spark/pom.xml), so nothing of pyspark's own is shadowed.
        "--driver-class-path",
        ":".join(str(j) for j in jars),
    ]
    for key, value in options.items():
        command += ["--conf", f"{key}={value}"]
    return [
        *command,
        "--hiveconf",
        f"hive.server2.thrift.port={port}",
        "--hiveconf",
        "hive.server2.thrift.bind.host=127.0.0.1",
        "spark-internal",
    ]


@contextmanager
def thrift_server(settings: Settings, master: str, log: Path) -> Iterator[int]:
    """A Spark Thrift server for ``settings`` on the cluster at ``master``; yields its port."""
    port = free_port()
    process = _start(thrift_server_command(settings, port, master), log, {})
    try:
        _wait("the Spark Thrift server", process, log, lambda: _listening(port))
        yield port
    finally:
        _stop(process)


@contextmanager
def standalone_cluster(work: Path) -> Iterator[str]:
    """A standalone master and one worker (2 cores, 2.5 GB) on 127.0.0.1; yields the master's
    URL once the worker has registered. Each application gets one core (the master's
    ``spark.deploy.defaultCores``), so two run side by side: the Thrift server and a batch.
    ``work`` gets their logs (``master.log`` names each application's id) and the worker's
    work dir (one ``app-<id>`` folder per application it ran executors for)."""
    port, ui, worker_ui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = {
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work),
        "SPARK_MASTER_OPTS": "-Dspark.deploy.defaultCores=1",
    }
    master_log, worker_log = work / "master.log", work / "worker.log"
    master = _start(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui)],
        master_log, env,
    )  # fmt: skip
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait("the Spark master", master, master_log, lambda: _listening(port))
        worker = _start(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
             "--cores", "2", "--memory", "2560m", "--webui-port", str(worker_ui),
             "--work-dir", str(work / "worker")],
            worker_log, env,
        )  # fmt: skip
        _wait(
            "the Spark worker",
            worker,
            worker_log,
            lambda: "Successfully registered with master" in _tail(worker_log, 100_000),
        )
        yield url
    finally:
        if worker is not None:
            _stop(worker)
        _stop(master)


def application_ids(work: Path) -> dict[str, list[str]]:
    """The ids the master of ``standalone_cluster(work)`` gave each application, by name
    ("Registered app shopstream-batch with ID app-20261205221500-0001")."""
    found: dict[str, list[str]] = {}
    for line in _tail(work / "master.log", 10_000_000).splitlines():
        _, sep, rest = line.partition("Registered app ")
        if sep and " with ID " in rest:
            name, app_id = rest.rsplit(" with ID ", 1)
            found.setdefault(name.strip(), []).append(app_id.strip())
    return found


def executor_tasks(work: Path, app_id: str) -> int:
    """How many tasks the worker's executors of application ``app_id`` started (their
    stderr logs "Running task 0.0 in stage 3.0 (TID 3)")."""
    return sum(
        log.read_text(errors="replace").count("Running task ")
        for log in (work / "worker" / app_id).glob("*/stderr")
    )
