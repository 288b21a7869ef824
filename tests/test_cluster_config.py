"""Static checks of the Ray cluster launcher configs (cluster.yaml, cluster.local.yaml).

The configs are validated the way `ray up` validates them before it talks to any provider: Ray's
own defaults are merged in (`prepare_config`) and the result is checked against the installed
autoscaler's JSON schema plus its consistency rules (`validate_config`), so a misspelled key
fails here instead of on a half-started cluster. No cloud access is needed.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
# Internal module of the installed Ray: the functions `ray up` itself calls.
ray_util = pytest.importorskip("ray.autoscaler._private.util")

REPO = Path(__file__).resolve().parents[1]
AWS = "cluster.yaml"
LOCAL = "cluster.local.yaml"
CONFIGS = [AWS, LOCAL]

COMMAND_LISTS = [
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """Fill Ray's provider defaults and validate, as `ray up` does; returns the prepared config."""
    prepared = ray_util.prepare_config(copy.deepcopy(config))
    ray_util.validate_config(prepared)
    return prepared


def all_commands(config: dict[str, Any]) -> list[str]:
    commands = [cmd for key in COMMAND_LISTS for cmd in config.get(key) or []]
    for node_type in (config.get("available_node_types") or {}).values():
        for key in ("initialization_commands", "worker_setup_commands"):
            commands += node_type.get(key) or []
    return commands


# --------------------------------------------------------------------------- schema validation


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_ray_validation(name: str) -> None:
    prepared = ray_validate(load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]


# Each case renames one key in a copy of the file; Ray's schema must reject the copy.
MISSPELLINGS = [
    (AWS, "\nsetup_commands:", "\nsetup_comands:"),
    (AWS, "\nhead_start_ray_commands:", "\nhead_start_ray_command:"),
    (AWS, "    min_workers: 0\n", "    min_worker: 0\n"),  # inside a node type
    (AWS, "    resources: {", "    resource: {"),  # inside a node type
    (AWS, "  pull_before_run:", "  pull_before_rnu:"),  # inside docker
    (AWS, "  ssh_user:", "  ssh_usr:"),  # inside auth
    (LOCAL, "\nfile_mounts:", "\nfile_mount:"),
    (LOCAL, "\nworker_start_ray_commands:", "\nworker_start_commands:"),
    (LOCAL, "  ssh_user:", "  ssh_usr:"),
]


@pytest.mark.parametrize(
    ("name", "good", "bad"), MISSPELLINGS, ids=[f"{n}:{b.strip()}" for n, _, b in MISSPELLINGS]
)
def test_misspelled_key_fails_validation(tmp_path: Path, name: str, good: str, bad: str) -> None:
    text = (REPO / name).read_text()
    assert good in text, f"test case out of date: {good!r} not in {name}"
    copy_path = tmp_path / name
    copy_path.write_text(text.replace(good, bad, 1))
    with pytest.raises(jsonschema.ValidationError) as err:
        ray_validate(yaml.safe_load(copy_path.read_text()))
    assert bad.strip().split(":")[0] in str(err.value)


def test_unknown_head_node_type_fails_validation() -> None:
    config = load(AWS)
    config["head_node_type"] = "no-such-type"
    with pytest.raises(ValueError, match="head_node_type"):
        ray_validate(config)


# --------------------------------------------------------------------------- no secrets

SECRET_PATTERNS = [
    re.compile(r"aws_secret_access_key|aws_access_key_id|aws_session_token", re.I),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # password / secret / token assigned a value (YAML "key: value" or shell "KEY=value")
    re.compile(r"(password|passwd|secret|token|api_key)\w*\s*[:=]\s*['\"]?[^\s'\"#]{3,}", re.I),
    re.compile(r"PGPASSWORD|MLFLOW_TRACKING_PASSWORD|MLFLOW_AUTH_ADMIN_PASSWORD", re.I),
    re.compile(r"[a-z+]+://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URI
]


def find_secrets(text: str) -> list[str]:
    return [m.group(0) for pattern in SECRET_PATTERNS for m in pattern.finditer(text)]


def test_secret_scanner_is_not_vacuous() -> None:
    samples = [
        "aws_secret_access_key: abc",
        "AKIAABCDEFGHIJKLMNOP",
        "password: hunter22",
        "export PGPASSWORD=hunter22",
        "MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:hunter22@db:5432/mlflow",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ]
    for sample in samples:
        assert find_secrets(sample), sample
    assert not find_secrets("postgresql://mlflow@127.0.0.1:5432/mlflow  # password in ~/.pgpass")


@pytest.mark.parametrize("name", CONFIGS)
def test_no_secrets_in_config(name: str) -> None:
    assert find_secrets((REPO / name).read_text()) == []


@pytest.mark.parametrize("name", CONFIGS)
def test_ssh_key_is_a_path_not_a_key(name: str) -> None:
    key = load(name).get("auth", {}).get("ssh_private_key")
    if key is not None:
        assert "\n" not in key and len(key) < 200


# --------------------------------------------------------------------------- node layout


def test_aws_head_runs_no_training() -> None:
    config = load(AWS)
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    assert head["resources"].get("GPU") == 0
    assert head["resources"].get("head", 0) >= 1, "driver-side actors need a custom resource to pin to"
    assert not head["node_config"]["InstanceType"].startswith(("p", "g", "trn", "inf")), "head is a CPU node"
    assert head.get("max_workers", 0) == 0


def test_aws_gpu_worker_types() -> None:
    config = ray_validate(load(AWS))
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    gpus = sorted(v["resources"].get("GPU", 0) for v in workers.values())
    assert 8 in gpus and 4 in gpus, gpus
    for name, node_type in workers.items():
        assert node_type["resources"].get("CPU", 0) > 0, name
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"], name
        # The head's database starts from the global initialization_commands; workers run only the
        # shared-filesystem mount of that list.
        assert node_type.get("initialization_commands") == config["initialization_commands"][:1], name
        assert not any("docker" in cmd for cmd in node_type["initialization_commands"]), name
        assert "IamInstanceProfile" in node_type["node_config"], f"{name} cannot write to the bucket"
    spot = [
        k
        for k, v in workers.items()
        if v["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"
    ]
    assert spot, "at least one worker type should run on spot"
    assert sum(v["min_workers"] for v in workers.values()) <= config["max_workers"]


def exported(config: dict[str, Any], name: str) -> str:
    """The value setup_commands export for environment variable ``name`` on every node."""
    for cmd in config["setup_commands"]:
        found = re.search(rf"'{name}=([^']+)'", cmd)
        if found:
            return found.group(1)
    raise AssertionError(f"setup_commands export no {name}")


def test_aws_cache_is_on_the_shared_filesystem_of_every_node() -> None:
    config = ray_validate(load(AWS))
    cache = exported(config, "XSTILTS_CACHE")
    mount = config["initialization_commands"][0]
    mountpoint = re.search(r"sudo mount -t nfs4 .* (/\S+);", mount)
    assert mountpoint, mount
    assert cache.startswith(mountpoint.group(1) + "/"), (cache, mount)
    # The containers see the host's mount at the same path.
    assert f"-v {mountpoint.group(1)}:{mountpoint.group(1)}" in config["docker"]["run_options"]
    assert exported(config, "XSTILTS_STORAGE").startswith("s3://")


def test_local_cache_is_a_path_not_a_uri() -> None:
    config = ray_validate(load(LOCAL))
    assert exported(config, "XSTILTS_CACHE").startswith("/")


def test_local_head_runs_no_training() -> None:
    config = load(LOCAL)
    assert config["provider"]["type"] == "local"
    assert "available_node_types" not in config, "the local provider rejects node types"
    assert config["provider"]["head_ip"] and config["provider"]["worker_ips"]
    start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in start and "--num-gpus=0" in start
    assert re.search(r"--resources='\{\"head\": *1\}'", start)


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize("name", CONFIGS)
def test_commands_reference_files_in_the_repo(name: str) -> None:
    config = load(name)
    mounts = config["file_mounts"]
    for local in mounts.values():
        assert (REPO / local).exists(), local
    referenced = []
    for cmd in all_commands(config):
        for remote, local in mounts.items():
            for rel in re.findall(re.escape(remote) + r"/([\w./-]+)", cmd):
                path = (REPO / local / rel).resolve()
                assert path.exists(), f"{name}: {cmd!r} refers to {rel}, which is not in the repository"
                referenced.append(path.relative_to(REPO).as_posix())
    assert "mlflow/start_shared.sh" in referenced


@pytest.mark.parametrize("name", CONFIGS)
def test_project_is_mounted_and_installed_everywhere(name: str) -> None:
    config = load(name)
    assert config["file_mounts"].get("~/xstilts") == "."
    assert any(re.search(r"pip install .*-e ~/xstilts\b", cmd) for cmd in config["setup_commands"])
    assert ".gitignore" in config.get("rsync_filter", [])


@pytest.mark.parametrize("name", CONFIGS)
def test_storage_and_mlflow_environment(name: str) -> None:
    config = load(name)
    common = " ".join(config["setup_commands"])
    assert re.search(r"XSTILTS_STORAGE=(s3://|/)\S+", common), "every node needs the shared storage"
    head = " ".join(config["head_setup_commands"])
    assert "MLFLOW_BACKEND_STORE_URI=postgresql://" in head
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in head
    # The tracking server is a head-only service: workers must not point at their own loopback.
    assert "MLFLOW_TRACKING_URI" not in common


@pytest.mark.parametrize("name", CONFIGS)
def test_services_bind_loopback_only(name: str) -> None:
    config = load(name)
    start = " ".join(config["head_start_ray_commands"])
    assert "mlflow/start_shared.sh" in start
    assert "--dashboard-host=127.0.0.1" in start
    everything = " ".join(all_commands(config))
    assert "0.0.0.0" not in everything
    assert "MLFLOW_HOST" not in everything, "start_shared.sh binds 127.0.0.1 unless MLFLOW_HOST is set"
    assert "listen_addresses=127.0.0.1" in everything, "PostgreSQL with trust auth must stay on loopback"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("name", CONFIGS)
def test_commands_are_valid_bash(name: str) -> None:
    for cmd in all_commands(load(name)):
        result = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, f"{name}: {cmd!r}: {result.stderr}"
