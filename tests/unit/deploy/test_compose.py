"""docker-compose.yml, .env.example and the Dockerfile, checked without a Docker engine.

`docker-compose config` (Debian's docker-compose) resolves the file as compose would
run it; the checks read that resolved form.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from heimdall.core.settings import InsecureSettingsError, Settings
from tests.support.monitoring import ROOT

ONE_SHOT = {"migrate", "minio-init"}
HEIMDALL_SERVICES = {"api-gateway", "rf-acquisition", "training", "inference", "data-ingestion-web"}
EXPECTED = {
    *HEIMDALL_SERVICES,
    *ONE_SHOT,
    "worker",
    "compute-worker",
    "simulator",
    "timescaledb",
    "rabbitmq",
    "redis",
    "minio",
    "prometheus",
    "grafana",
}


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which("docker-compose"), "docker-compose missing: `make install` installs it"
    return subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(env_file: Path) -> dict[str, Any]:
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return resolved(ROOT / ".env.example")


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("env") / ".env"
    result = subprocess.run(
        ["bash", "scripts/generate-env.sh"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    path.write_text(result.stdout)
    return path


def test_the_whole_platform_is_in_the_file(example: dict[str, Any]) -> None:
    assert set(example["services"]) == EXPECTED


def test_every_long_running_container_has_a_healthcheck(example: dict[str, Any]) -> None:
    for name, service in example["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
        else:
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped", name


def test_dependencies_wait_for_health_or_completion(example: dict[str, Any]) -> None:
    services = example["services"]
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if dependency in ONE_SHOT:
                assert how["condition"] == "service_completed_successfully", (name, dependency)
            else:
                assert how["condition"] == "service_healthy", (name, dependency)
                assert "healthcheck" in services[dependency], dependency
    # Everything that needs the schema waits for the migration.
    for name in [*HEIMDALL_SERVICES - {"api-gateway"}, "worker", "compute-worker"]:
        assert "migrate" in services[name]["depends_on"], name
    for name in ("rf-acquisition", "training", "inference", "worker", "compute-worker"):
        assert "minio-init" in services[name]["depends_on"], name


def test_one_image_runs_every_heimdall_process(example: dict[str, Any]) -> None:
    services = example["services"]
    ours = {n for n, s in services.items() if s.get("build", {}).get("context") == str(ROOT)}
    assert ours == HEIMDALL_SERVICES | {"worker", "compute-worker", "simulator", "migrate"}
    assert len({services[n]["image"] for n in ours}) == 1
    commands = {n: " ".join(services[n]["command"]) for n in ours}
    assert commands["migrate"] == "heimdall migrate"
    assert commands["simulator"] == "heimdall sim"
    assert commands["worker"].endswith("exec heimdall worker acquisition\n")
    assert commands["compute-worker"].endswith("exec heimdall worker compute\n")
    for name in HEIMDALL_SERVICES:
        module = name.replace("-", "_").replace("api_gateway", "gateway")
        assert commands[name].startswith(f"uvicorn heimdall.services.{module}:app"), name


def test_the_workers_scale_out(example: dict[str, Any]) -> None:
    for name, node in (("worker", "heimdall@%h"), ("compute-worker", "heimdall-compute@%h")):
        worker = example["services"][name]
        assert "container_name" not in worker and "ports" not in worker
        environment = worker["environment"]
        # %h: a unique Celery node name per replica, the one its healthcheck pings.
        assert environment["HEIMDALL_WORKER_NODE_NAME"] == node
        assert node.replace("%h", "$$HOSTNAME") in worker["healthcheck"]["test"][-1]
        assert environment["HEIMDALL_WORKER_METRICS_PORT"] == "9808"
        assert environment["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
        assert "/tmp" in worker["tmpfs"]
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "worker")
    assert job["dns_sd_configs"] == [
        {
            "names": ["worker", "compute-worker"],
            "type": "A",
            "port": 9808,
            "refresh_interval": "15s",
        }
    ]


def test_prometheus_scrapes_every_service_where_compose_runs_it(example: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    static = {
        j["job_name"]: j["static_configs"][0]["targets"]
        for j in prometheus["scrape_configs"]
        if "static_configs" in j
    }
    for name in HEIMDALL_SERVICES:
        port = re.search(r"--port (\d+)", " ".join(example["services"][name]["command"]))
        assert port is not None
        assert static[name] == [f"{name}:{port.group(1)}"]


def test_monitoring_containers_get_the_deploy_files(example: dict[str, Any]) -> None:
    services = example["services"]

    def mounts(name: str) -> dict[str, str]:
        """Container path -> host path of the bind mounts (short syntax: source:target:mode)."""
        binds = [v.split(":") for v in services[name]["volumes"] if v.startswith("/")]
        return {target: source for source, target, *_ in binds}

    assert mounts("prometheus")["/etc/prometheus"] == str(ROOT / "deploy/prometheus")
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == str(ROOT / "deploy/grafana/provisioning")
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/heimdall.yml").read_text()
    )["providers"][0]
    assert grafana[provider["options"]["path"]] == str(ROOT / "deploy/grafana/dashboards")
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def _settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_the_example_env_holds_placeholders_that_production_refuses(
    example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        line.split("=", 1)[1]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]*(PASSWORD|KEY|TOKENS)=", line)
    }
    assert secrets == {"changeme"}
    for name in (*HEIMDALL_SERVICES, "worker", "migrate"):
        environment = example["services"][name]["environment"]
        assert environment["HEIMDALL_ENVIRONMENT"] == "production", name
    with pytest.raises(InsecureSettingsError) as refused:
        _settings_of(example["services"]["worker"], monkeypatch)
    for setting in ("HEIMDALL_S3_SECRET_KEY", "HEIMDALL_DATABASE_URL", "HEIMDALL_BROKER_URL"):
        assert setting in str(refused.value)


def test_generated_secrets_make_valid_production_settings(
    generated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = dict(
        line.split("=", 1)
        for line in generated_env.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert "changeme" not in values.values()
    assert len(set(values.values())) == len(values)  # a fresh secret each
    config = resolved(generated_env)
    settings = _settings_of(config["services"]["rf-acquisition"], monkeypatch)
    assert settings.environment == "production"
    assert values["POSTGRES_PASSWORD"] in settings.database_url.get_secret_value()
    assert settings.s3_endpoint == "http://minio:9000"


def test_a_missing_secret_stops_compose_naming_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "\n".join(
            line
            for line in (ROOT / ".env.example").read_text().splitlines()
            if not line.startswith("RABBITMQ_PASSWORD=")
        )
    )
    result = compose_config(env)
    assert result.returncode != 0
    assert "set RABBITMQ_PASSWORD in .env" in result.stderr


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "COPY --from=build /opt/heimdall /opt/heimdall" in runtime
    user = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    # Only what the image needs goes into the build context.
    ignored = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] not in "#"
    ]
    assert ignored[:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]


def test_the_shell_scripts_in_the_file_parse(example: dict[str, Any]) -> None:
    scripts = {
        name: service["command"][-1]
        for name, service in example["services"].items()
        if "/bin/sh" in [*service.get("entrypoint", []), *service.get("command", [])[:1]]
    }
    assert set(scripts) == {"minio-init", "worker", "compute-worker"}
    for name, script in scripts.items():
        # `config` keeps compose's $$ escapes; the container's shell sees single $.
        checked = subprocess.run(["sh", "-n", "-c", script.replace("$$", "$")], capture_output=True)
        assert checked.returncode == 0, (name, checked.stderr)
