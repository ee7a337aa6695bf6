"""The API process never loads Spark or the streaming code, whatever the dashboard serves.

(The dashboard's routes over a lake and an ops database: tests/integration/api.)"""

from __future__ import annotations

import subprocess
import sys


def test_the_api_never_loads_spark() -> None:
    code = "import sys, api.main; print('pyspark' in sys.modules or 'streams' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
