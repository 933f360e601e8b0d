"""The deployment files operators use: the compose stack, the image and the Kubernetes work-pool
template parse, hang together with prefect.yaml and the code, and carry no secret beyond the
documented local defaults."""

from __future__ import annotations

import json
import re

import yaml
from prefect.server.schemas.actions import validate_base_job_template
from prefect.utilities.templating import apply_values, find_placeholders

from registry.config.settings import PROJECT_ROOT
from registry.orchestration import WORK_POOL
from registry.storage import layout

INFRA = PROJECT_ROOT / "infra"
COMPOSE = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
TEMPLATE = json.loads((INFRA / "k8s" / "base-job-template.json").read_text(encoding="utf-8"))
README = (INFRA / "README.md").read_text(encoding="utf-8")
DOCKERFILE = (INFRA / "Dockerfile").read_text(encoding="utf-8")

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|CREDENTIAL", re.IGNORECASE)
_INTERPOLATED = re.compile(r"^\$\{(?P<var>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")
_URL_PASSWORD = re.compile(r"://[^/:@\s]+:(?P<password>[^@\s]+)@")
# Lines of the README's table of local defaults: | `VARIABLE` | `default` | ... |
_DOCUMENTED = re.compile(r"^\| `(?P<var>[A-Z0-9_]+)` \| `(?P<default>[^`]+)` \|", re.MULTILINE)
# What the Kubernetes worker reads from job_configuration (prefect-kubernetes'
# KubernetesWorkerJobConfiguration), base fields included.
K8S_JOB_CONFIGURATION = {
    "command", "env", "labels", "name", "namespace", "job_manifest", "cluster_config",
    "job_watch_timeout_seconds", "pod_watch_timeout_seconds", "stream_output",
}


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items() if k != "<<"}


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_compose_runs_the_store_a_server_on_postgres_and_a_worker() -> None:
    services = COMPOSE["services"]
    assert {"s3", "postgres", "prefect-server", "worker"} <= set(services)
    server = services["prefect-server"]
    assert _environment(server)["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://")
    assert "@postgres:5432/" in _environment(server)["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert "postgres" in server["depends_on"]

    worker = services["worker"]
    env = _environment(worker)
    assert env["REGISTRY_STORAGE_URI"].startswith("s3://")
    assert env["AWS_ENDPOINT_URL"] == "http://s3:9000"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(env)
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["build"]["dockerfile"] == "infra/Dockerfile"
    command = " ".join(worker["command"])
    assert "registry orchestration setup" in command
    assert "prefect --no-prompt deploy --all" in command
    assert f"prefect worker start --pool {WORK_POOL}" in command
    # The bucket the store creates is the one the worker uses.
    bucket = env["REGISTRY_STORAGE_URI"].removeprefix("s3://").split("/")[0]
    assert f"store/{bucket}" in " ".join(services["s3-bucket"]["command"])


def test_the_stack_listens_on_loopback_only() -> None:
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_holds_no_credential_beyond_the_documented_local_defaults() -> None:
    documented = {m["var"]: m["default"] for m in _DOCUMENTED.finditer(README)}
    assert documented, "infra/README.md lists no local defaults"
    checked = 0
    for name, service in COMPOSE["services"].items():
        for var, value in _environment(service).items():
            if _SECRET_NAME.search(var) and not var.endswith("_ID"):
                match = _INTERPOLATED.match(value)
                assert match, f"{name}.{var} is written in the file, not a variable"
                assert documented.get(match["var"]) == match["default"], (name, var)
                checked += 1
    assert checked >= 4
    for text in _strings(COMPOSE):
        for match in _URL_PASSWORD.finditer(text):
            password = _INTERPOLATED.match(match["password"])
            assert password and documented.get(password["var"]) == password["default"], text
    raw = (INFRA / "compose.yaml").read_text(encoding="utf-8")
    assert not re.search(r"AKIA[0-9A-Z]{16}", raw)


def test_flow_runs_start_in_the_folder_the_image_installs_the_project_in() -> None:
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert f"REGISTRY_PROJECT_DIR={workdir}" in DOCKERFILE
    assert _environment(COMPOSE["services"]["worker"])["REGISTRY_PROJECT_DIR"] == workdir
    assert TEMPLATE["variables"]["properties"]["env"]["default"]["REGISTRY_PROJECT_DIR"] == workdir
    # Editable: the registry finds config/, schemas/, contracts/ and expectations/ beside its
    # code. With the pipeline extra: flows run in it.
    assert "pip install -e '.[pipeline]'" in DOCKERFILE
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert not {"config", "schemas", "contracts", "expectations", "flows", "registry"} & set(
        ignored)


def test_the_job_template_is_one_prefect_accepts() -> None:
    assert validate_base_job_template(TEMPLATE) == TEMPLATE
    assert set(TEMPLATE["job_configuration"]) == K8S_JOB_CONFIGURATION
    declared = set(TEMPLATE["variables"]["properties"])
    used = {p.name for p in find_placeholders(json.dumps(TEMPLATE["job_configuration"]))}
    assert used == declared  # no variable that nothing reads


def test_the_job_manifest_renders_to_a_job_the_kubernetes_worker_accepts() -> None:
    defaults = {name: spec["default"] for name, spec in
                TEMPLATE["variables"]["properties"].items() if "default" in spec}
    config = apply_values(TEMPLATE["job_configuration"], defaults)
    job = config["job_manifest"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    pod = job["spec"]["template"]["spec"]
    # Values the worker insists on (its manifest validation).
    assert (pod["parallelism"], pod["completions"], pod["restartPolicy"]) == (1, 1, "Never")
    [container] = pod["containers"]
    assert container["name"] == "prefect-job"
    assert container["image"] == "yrd-registry:latest"
    assert container["envFrom"] == [{"secretRef": {"name": "registry-storage"}}]
    assert job["metadata"]["namespace"] == "registry"


def test_the_job_template_sets_no_credential_itself() -> None:
    env = TEMPLATE["variables"]["properties"]["env"]["default"]
    assert not [var for var in env if _SECRET_NAME.search(var)]
    assert "AWS_" not in json.dumps(TEMPLATE["job_configuration"])


def test_the_lifecycle_rules_are_accepted_by_s3_and_bound_what_the_store_keeps(
    s3_settings, s3_bucket: str
) -> None:
    """Incomplete multipart uploads are aborted after a day, and the raw archive of uploads
    (the one copy of consumers' names and phones the registry keeps) expires after three
    years: the retention docs/operations.md documents."""
    import boto3

    rule = json.loads((INFRA / "lifecycle.json").read_text(encoding="utf-8"))
    client = boto3.client(
        "s3", endpoint_url=s3_settings.aws_endpoint_url, region_name=s3_settings.aws_region,
        aws_access_key_id=s3_settings.aws_access_key_id,
        aws_secret_access_key=s3_settings.aws_secret_access_key.get_secret_value(),
    )
    client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration=rule)
    applied = {r["ID"]: r for r in
               client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]}
    assert {r["Status"] for r in applied.values()} == {"Enabled"}
    aborts = applied["abort-incomplete-multipart-uploads"]
    assert aborts["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    raw = applied["expire-raw-uploads"]
    assert raw["Expiration"] == {"Days": 1095}
    assert layout.raw_key("SH", "merchants", "0" * 64, "csv").startswith(raw["Filter"]["Prefix"])
