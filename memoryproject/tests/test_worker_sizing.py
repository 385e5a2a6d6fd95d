"""gunicorn.conf.py sizes the web process from the CPUs it may use, not the host's."""

import os
import runpy
import subprocess
import sys

import pytest

from memoryproject.tests.servers import ROOT

CONFIG = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
usable_cpus = CONFIG["usable_cpus"]
AFFINITY = len(os.sched_getaffinity(0))


def cgroup(tmp_path, **files):
    for name, text in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, AFFINITY),
        ({"cpu.max": "max 100000\n"}, AFFINITY),
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU still runs one process
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "6400000 100000\n"}, AFFINITY),  # a quota above the affinity
        ({"cpu__cpu.cfs_quota_us": "-1\n", "cpu__cpu.cfs_period_us": "100000\n"}, AFFINITY),
        ({"cpu__cpu.cfs_quota_us": "100000\n", "cpu__cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu.max": "garbage"}, AFFINITY),
    ],
)
def test_usable_cpus_is_the_affinity_lowered_by_a_cgroup_quota(tmp_path, files, expected):
    assert usable_cpus(cgroup(tmp_path, **files)) == expected


def test_the_procfile_runs_threaded_workers_sized_by_web_concurrency():
    base = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "WEB_THREADS")}

    def printed(**env) -> dict:
        output = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--print-config",
             "memoryproject.wsgi:application"],
            cwd=ROOT, env={**base, **env}, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        lines = (line.split("=", 1) for line in output.splitlines() if "=" in line)
        return {name.strip(): value.strip() for name, value in lines}

    defaults = printed()
    assert defaults["worker_class"] == "gthread"
    assert int(defaults["workers"]) == max(2, usable_cpus())
    assert int(defaults["threads"]) == 8
    chosen = printed(WEB_CONCURRENCY="3", WEB_THREADS="5")
    assert (chosen["workers"], chosen["threads"]) == ("3", "5")
