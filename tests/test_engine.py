"""The dask engine: sizes, an unreachable scheduler, and analyze / compare on a LocalCluster of
two worker processes giving the local results."""

import json
import time

import numpy as np
import pytest

from rocksynth.engine import parse_bytes
from rocksynth.errors import BadInputError
from rocksynth.io import write_volume


@pytest.mark.parametrize("text, expected", [("4GB", 4 * 10**9), ("512MiB", 512 * 2**20), ("2e9", 2 * 10**9),
                                            ("1.5 gb", 15 * 10**8)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "4XB", "-1GB", "0", "lots", "inf"])
def test_parse_bytes_refuses_what_is_not_a_size(text):
    with pytest.raises(BadInputError, match="--memory-limit"):
        parse_bytes(text)


def _volume(tmp_path, berea_crop):
    path = tmp_path / "v.tif"
    write_volume(path, berea_crop[:48, :48, :48])
    return path


def _json(run_cli, args) -> dict:
    # Through the real entry point in its own process: the test's scheduler runs in this one, and
    # its log records must not mix with the command's stdout (once PoreSpy is imported, a
    # handler on the root logger writes them to stdout).
    code, stdout, stderr = run_cli("-q", *args, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def _measures(report: dict) -> dict:
    return {key: value for key, value in report.items() if key not in ("timings",)}


def test_unreachable_scheduler_is_one_line_exit_2(tmp_path, berea_crop, run_cli_in_process):
    path = _volume(tmp_path, berea_crop)
    started = time.perf_counter()
    code, stdout, stderr = run_cli_in_process("-q", "analyze", path, "--only", "porosity", "--scheduler",
                                              "tcp://127.0.0.1:9")
    assert code == 2 and stdout == b""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in stderr
    assert time.perf_counter() - started < 30


def test_analyze_and_compare_on_a_local_cluster_equal_the_local_run(tmp_path, berea_crop, run_cli):
    distributed = pytest.importorskip("distributed")
    path = _volume(tmp_path, berea_crop)
    other = tmp_path / "w.tif"
    write_volume(other, berea_crop[-48:, -48:, -48:])
    analyze = ["analyze", str(path), "--voxel-size", "5.345um", "--chunks", "24x24x24"]
    compare = ["compare", str(path), "--vs", str(other), "--crops", "3", "--crop-size", "24", "--bootstrap", "10"]
    local = _measures(_json(run_cli, analyze))
    local_compare = _json(run_cli, compare + ["--jobs", "1"])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster:
        remote = _measures(_json(run_cli, analyze + ["--scheduler", cluster.scheduler_address]))
        remote_compare = _json(run_cli, compare + ["--scheduler", cluster.scheduler_address])
    assert remote == local
    assert remote_compare == local_compare
    assert {"porosity", "correlation", "minkowski", "psd", "network", "permeability"} <= set(local)
    assert np.isfinite(local["psd"]["diameter_d50"]) and local["network"]["pores"] > 0


@pytest.mark.parametrize("options, message", [
    (["--chunks", "500x500x500"], "does not fit the volume"),
    (["--chunks", "8xfoo"], "cannot read chunk shape"),
    (["--network", "some"], "choose one of auto, whole, blocks"),
    (["--memory-limit", "lots"], "is not a size"),
])
def test_bad_engine_options_are_one_line_exit_2_and_write_nothing(tmp_path, berea_crop, run_cli_in_process,
                                                                  options, message):
    path = _volume(tmp_path, berea_crop)
    code, stdout, stderr = run_cli_in_process("-q", "analyze", path, "--report", tmp_path / "report", *options)
    assert code == 2 and stdout == b"" and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


def test_progress_follows_results_on_a_cluster():
    distributed = pytest.importorskip("distributed")
    import dask

    from rocksynth.engine import dask_engine

    calls = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  silence_logs=50) as cluster:
        with dask_engine(scheduler=cluster.scheduler_address, on_task=lambda done, total: calls.append((done, total))):
            parts = dask.compute(*[dask.delayed(np.sum)(np.arange(n)) for n in range(5)])
    assert parts == tuple(n * (n - 1) // 2 for n in range(5))
    assert calls[0][1] == 5 and calls[-1] == (5, 5)  # polled: every change seen, not every task
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
