"""The deployment files, checked offline: the Kubernetes manifests against the API schema (kubernetes-validate),
and every role of the manifests and of the compose file against emotiond's own settings, as its pod or container
would load them (the shared emotiond.toml plus that role's EMOTIOND_* variables)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emotiond.core.settings import load_settings

from support.daemon import REPO

DEPLOY = REPO / "config" / "deploy"
MANIFESTS = DEPLOY / "kubernetes.yaml"
KUBERNETES_VERSION = "1.30.0"
ROLES = {"daemon", "worker", "web", "mqtt"}


def documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet",
                           "-k", KUBERNETES_VERSION, str(path)], capture_output=True, text=True, timeout=120)


def test_manifests_validate_and_a_broken_one_does_not(tmp_path):
    done = validate(MANIFESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yaml"  # the validator's positive control: it does reject a wrong field
    broken.write_text(MANIFESTS.read_text().replace("replicas: 2 ", "replicas: two ", 1))
    assert "replicas: two" in broken.read_text()
    assert validate(broken).returncode != 0


def deployments() -> dict[str, dict]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in documents()
            if d["kind"] == "Deployment"}


def test_every_role_has_a_deployment_probes_and_a_non_root_user():
    found = deployments()
    assert set(found) == ROLES
    assert found["worker"]["spec"]["replicas"] >= 2
    probes = {}
    for role, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        probes[role] = {container[kind]["httpGet"]["path"] for kind in ("livenessProbe", "readinessProbe")
                        if kind in container}
    assert probes == {"daemon": {"/metrics"}, "worker": {"/metrics"}, "web": {"/api/health"}, "mqtt": {"/metrics"}}


def test_secret_holds_every_key_a_pod_mounts_and_the_bus_service_every_endpoint():
    (secret,) = [d for d in documents() if d["kind"] == "Secret"]
    mounted = {item["key"] for d in deployments().values() for volume in d["spec"]["template"]["spec"]["volumes"]
               if "secret" in volume for item in volume["secret"]["items"]}
    assert mounted <= set(secret["stringData"]), mounted - set(secret["stringData"])
    (bus,) = [d for d in documents() if d["kind"] == "Service" and d["metadata"]["name"] == "emotiond-bus"]
    assert {p["port"] for p in bus["spec"]["ports"]} >= {5550, 5551, 5552}


def role_settings(config: Path, env: dict[str, str], monkeypatch):
    with monkeypatch.context() as patched:
        for name, value in env.items():
            patched.setenv(name, value)
        return load_settings(config)


def flag_settings(command: list[str]) -> dict[str, str]:
    """The settings a role's command line sets beyond its environment: the web console's --host."""
    return {"EMOTIOND_WEB__HOST": command[command.index("--host") + 1]} if "--host" in command else {}


def test_each_pod_loads_its_settings(tmp_path, monkeypatch):
    (config_map,) = [d for d in documents() if d["kind"] == "ConfigMap"]
    config = tmp_path / "emotiond.toml"
    config.write_text(config_map["data"]["emotiond.toml"])
    for role, deployment in deployments().items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env.update(flag_settings(container["args"]))
        if role == "web":
            env["EMOTIOND_WEB__TOKEN"] = "a-token-of-sixteen-chars"  # from the Secret
        settings = role_settings(config, env, monkeypatch)
        assert settings.security.client_configured, role
        assert not settings.workers.local
        if role == "daemon":
            assert settings.security.server_configured and settings.bus.results_endpoint.startswith("tcp://0.0.0.0")


def test_compose_roles_load_their_settings(monkeypatch):
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"daemon", "worker1", "worker2", "web", "mqtt", "mosquitto"}
    for name, service in services.items():
        if name == "mosquitto":
            continue
        env = {k: str(v) for k, v in service["environment"].items() if v is not None}
        env.update(flag_settings(service["command"]))
        env.setdefault("EMOTIOND_WEB__TOKEN", "a-token-of-sixteen-chars")
        settings = role_settings(DEPLOY.parent / "emotiond.toml", env, monkeypatch)
        assert settings.security.client_configured, name
        assert service["command"][0] == "emotiond"


@pytest.mark.parametrize("script", ["base-image.sh", "headless-opencv.sh"])
def test_deploy_scripts_parse(script):
    assert subprocess.run(["sh", "-n", str(DEPLOY / script)], capture_output=True, timeout=30).returncode == 0
