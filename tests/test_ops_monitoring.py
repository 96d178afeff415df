"""The shipped operations files: Prometheus config and alert rules pass promtool, the dashboard queries real
metrics, the systemd unit parses, and a real Prometheus server scrapes a running daemon."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from support.daemon import REPO, free_port, wait_for
from support.tools import require_tool

CONFIG = REPO / "config"
SERIES_SUFFIX = re.compile(r"_(bucket|sum|count|created)$")


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((CONFIG / "grafana" / "emotiond-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _live_metric_names(daemon) -> set[str]:
    """The emotiond_ series names a running daemon exports (histograms by their base name)."""
    text = daemon.first_metrics_text()
    return {SERIES_SUFFIX.sub("", sample.name) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("emotiond_")}


def test_promtool_accepts_config_and_rules():
    promtool = require_tool("promtool", "prometheus", "checking the shipped Prometheus config and rules")
    for command in (["check", "config", str(CONFIG / "prometheus" / "prometheus.yml")],
                    ["check", "rules", str(CONFIG / "prometheus" / "alerts.yml")]):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    rules = (CONFIG / "prometheus" / "alerts.yml").read_text()
    for alert in ("EmotiondSourceDown", "EmotiondHighDropRate", "EmotiondHighLatency", "EmotiondRestarting"):
        assert f"alert: {alert}" in rules


def test_dashboard_queries_only_metrics_a_running_daemon_exports(start_daemon, default_model):
    """Every series is exported from the first scrape (at 0), so no result needs to flow for this."""
    daemon = start_daemon("--source", "demo", "--loop", workers=1)
    live = _live_metric_names(daemon)
    assert {"emotiond_frames_processed_total", "emotiond_frames_requeued_total",
            "emotiond_capture_to_publish_seconds"} <= live, live  # positive control: the scrape is complete
    used = {SERIES_SUFFIX.sub("", name) for expr in _dashboard_expressions()
            for name in re.findall(r"emotiond_[a-z_]+", expr)}
    assert {"emotiond_source_up", "emotiond_process_restarts_total", "emotiond_frames_dropped_total"} <= used
    assert used <= live, f"the dashboard queries metrics the daemon does not export: {sorted(used - live)}"
    assert daemon.stop() == 0


def test_systemd_unit_parses():
    systemd_analyze = require_tool("systemd-analyze", "systemd", "checking the shipped systemd unit")
    result = subprocess.run([systemd_analyze, "verify", str(CONFIG / "emotiond.service")],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable" not in line and "No such file" not in line]
    assert not problems, problems


def test_real_prometheus_scrapes_the_daemon(start_daemon, videos, default_model, tmp_path):
    prometheus = require_tool("prometheus", "prometheus", "the live scrape test")
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1)
    daemon.wait_ready(1)
    config = (CONFIG / "prometheus" / "prometheus.yml").read_text().replace(
        "127.0.0.1:9108", f"127.0.0.1:{daemon.metrics_port}").replace("scrape_interval: 5s", "scrape_interval: 1s")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(CONFIG / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=log, stderr=subprocess.STDOUT)

    def answer(expr: str) -> dict:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # a query Prometheus refuses (400, 422): its error body
            return json.loads(error.read())
        except OSError:
            return {}

    def query(expr: str) -> list[dict]:
        body = answer(expr)
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
        for expr in _dashboard_expressions():  # every dashboard panel's query parses and runs
            assert answer(expr).get("status") == "success", (expr, answer(expr))
        print(f"Prometheus scraped the daemon and answered a query after {time.monotonic() - started:.1f}s")
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    assert daemon.stop() == 0
