"""The shipped operations files: Prometheus config and alert rules pass promtool, the dashboard queries real
metrics, the systemd unit parses, and a real Prometheus server scrapes a running daemon."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from support.daemon import REPO, free_port, wait_for

CONFIG = REPO / "config"
needs_prometheus = pytest.mark.skipif(shutil.which("promtool") is None or shutil.which("prometheus") is None,
                                      reason="needs the Debian prometheus package")


def _metric_names() -> set[str]:
    source = (REPO / "daemon" / "metrics.py").read_text()
    return set(re.findall(r'"(emotiond_[a-z_]+)"', source))


@needs_prometheus
def test_promtool_accepts_config_and_rules():
    for command in (["check", "config", str(CONFIG / "prometheus" / "prometheus.yml")],
                    ["check", "rules", str(CONFIG / "prometheus" / "alerts.yml")]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    rules = (CONFIG / "prometheus" / "alerts.yml").read_text()
    for alert in ("EmotiondSourceDown", "EmotiondHighDropRate", "EmotiondHighLatency", "EmotiondRestarting"):
        assert f"alert: {alert}" in rules


def test_dashboard_queries_only_existing_metrics():
    dashboard = json.loads((CONFIG / "grafana" / "emotiond-dashboard.json").read_text())
    known = _metric_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"emotiond_[a-z_]+", target["expr"])}
    assert used and used <= known, used - known
    assert {"emotiond_source_up", "emotiond_process_restarts_total", "emotiond_frames_dropped_total"} <= used


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_unit_parses():
    result = subprocess.run(["systemd-analyze", "verify", str(CONFIG / "emotiond.service")],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable" not in line and "No such file" not in line]
    assert not problems, problems


@needs_prometheus
def test_real_prometheus_scrapes_the_daemon(start_daemon, videos, default_model, tmp_path):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1)
    daemon.wait_ready(1)
    config = (CONFIG / "prometheus" / "prometheus.yml").read_text().replace(
        "127.0.0.1:9108", f"127.0.0.1:{daemon.metrics_port}").replace("scrape_interval: 5s", "scrape_interval: 1s")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(CONFIG / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=log, stderr=subprocess.STDOUT)

    def query(expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except OSError:
            return []
        return body["data"]["result"] if body.get("status") == "success" else []

    try:
        started = time.monotonic()
        samples = wait_for(lambda: query('emotiond_frames_processed_total{camera="tv"} > 0'), 60,
                           interval=0.5, what="Prometheus to have scraped processed frames")
        assert float(samples[0]["value"][1]) > 0
        assert wait_for(lambda: query('up{job="emotiond"} == 1'), 10, what="target up")
        source_up = wait_for(lambda: query('emotiond_source_up{camera="tv"}'), 10, what="source_up")
        assert float(source_up[0]["value"][1]) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} >= {"EmotiondSourceDown", "EmotiondRestarting"}
        print(f"Prometheus scraped the daemon and answered a query after {time.monotonic() - started:.1f}s")
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    assert daemon.stop() == 0
