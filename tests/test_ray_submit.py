"""``ray submit cluster.yaml search/main.py -- ...`` as far as it goes without a cloud.

1. The documented command lines (README.md, docs/cluster.md and the headers of cluster.yaml and
   cluster.local.yaml) go through Ray's own CLI (``ray.scripts.scripts.cli``, the ``ray`` entry point) with
   its two cluster-facing steps replaced by recorders: ``rsync`` (the upload of the script to the head)
   and ``exec_cluster`` (the command run there). Ray uploads ``search/main.py`` to ``~/main.py`` and runs
   ``python ~/main.py <the arguments after -->``, which xstilts' own parser accepts.
2. Ray's ``DockerCommandRunner``, built from cluster.yaml's ``docker`` and ``auth`` sections with a recording
   process runner, turns that into the SSH command for the head and the shell command it runs inside the
   container: ``bash --login -c -i 'source ~/.bashrc; ... (python /home/ray/main.py ...)'``, so the driver
   sees what ``setup_commands`` put into ``~/.bashrc`` (``XSTILTS_STORAGE``).
3. That container command is then run here: a temporary directory stands in for the head's home (its
   ``.bashrc`` puts this Python on ``PATH`` as the image's does; ``~/xstilts`` is the project, as
   ``file_mounts`` makes it; cluster.yaml's ``setup_commands`` that only write to the home directory run in
   it), ``~/main.py`` is a copy of ``search/main.py`` outside the checkout, so ``search`` and ``trainers``
   come from the installed package, and ``ray.init()`` finds a local head + worker cluster
   (``ray.cluster_utils.Cluster``) through its address file, as on a head started by ``ray start --head``.
   The small search completes and its trials ran on the cluster's worker nodes.

Not run here (no cloud, no SSH server, no Docker): launching instances (``ray up``: the AWS provider,
IAM, AMIs, security groups), the ``docker run`` of the head and worker containers, ``file_mounts`` and the
upload of ``main.py`` over rsync/SSH to real hosts, the ``pip install`` setup commands, the
``initialization_commands`` / ``head_setup_commands`` (PostgreSQL container, MLflow server) and
``ray start`` on real nodes, and the autoscaler adding and removing worker nodes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/cluster.md", "cluster.yaml", "cluster.local.yaml"]
CONTAINER_HOME = "/home/ray"
"""``$HOME`` in the rayproject/ray images (``docker exec ... printenv HOME``)."""


def documented_submit_commands() -> list[tuple[str, str]]:
    """``(document, command)`` for every ``ray submit`` line a user would copy (code blocks, yaml headers)."""
    found = []
    for name in DOCUMENTS:
        path = ROOT / name
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        if name.endswith(".yaml"):
            lines = [re.sub(r"^#\s?", "", line) for line in lines if line.startswith("#")]
        else:
            inside, kept = False, []
            for line in lines:
                if line.startswith("```"):
                    inside = not inside
                elif inside:
                    kept.append(line)
            lines = kept
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            if line.startswith("ray submit "):
                command = line
                while command.endswith("\\") and index + 1 < len(lines):
                    index += 1
                    command = command[:-1].rstrip() + " " + lines[index].strip()
                command = command.split(" #", 1)[0].strip()
                if "..." not in command:
                    found.append((name, command))
            index += 1
    return found


COMMANDS = documented_submit_commands()


class Recorder:
    """Stands in for ``rsync`` and ``exec_cluster`` in ``ray.scripts.scripts``."""

    def __init__(self) -> None:
        self.uploads: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []

    def rsync(self, config_file: str, source: str, target: str, *args: Any, **kwargs: Any) -> None:
        self.uploads.append({"config": config_file, "source": source, "target": target, **kwargs})

    def exec_cluster(self, config_file: str, **kwargs: Any) -> None:
        self.commands.append({"config": config_file, **kwargs})


def ray_submit(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Run ``ray <argv>`` through Ray's click CLI, recording what it would upload and execute."""
    import ray.scripts.scripts as ray_cli

    recorder = Recorder()
    monkeypatch.setattr(ray_cli, "rsync", recorder.rsync)
    monkeypatch.setattr(ray_cli, "exec_cluster", recorder.exec_cluster)

    def no_cloud(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("ray submit tried to start a cluster")

    monkeypatch.setattr(ray_cli, "create_or_update_cluster", no_cloud)
    monkeypatch.chdir(ROOT)  # the README's commands run from the repository root
    ray_cli.cli.main(args=argv, prog_name="ray", standalone_mode=False)
    return recorder


def submitted(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(the arguments after ``--``, the recorded upload, the recorded command) of a ``ray submit`` line."""
    argv = shlex.split(command)
    assert argv[:2] == ["ray", "submit"], command
    assert "--" in argv, f"{command}: the search's options must follow `--`, or Ray's CLI takes them"
    recorder = ray_submit(argv[1:], monkeypatch)
    assert len(recorder.uploads) == 1 and len(recorder.commands) == 1
    return argv[argv.index("--") + 1 :], recorder.uploads[0], recorder.commands[0]


@pytest.mark.skipif(not COMMANDS, reason="no documented `ray submit` command found")
@pytest.mark.parametrize(("document", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_submit_uploads_main_and_runs_it_in_the_home_directory(
    document: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.cli import build_parser

    args, upload, run = submitted(command, monkeypatch)
    config_file = upload["config"]
    assert (ROOT / config_file).is_file(), f"{document}: {config_file} is not in the repository"
    # Ray uploads the script to the head's home directory and runs it from there with the arguments.
    assert upload["source"] == "search/main.py" and (ROOT / upload["source"]).is_file()
    assert upload["target"] == "~/main.py" and upload["down"] is False
    assert run["config"] == config_file
    assert run["cmd"] == " ".join(["python", "~/main.py", *args])
    assert run["run_env"] == "docker" and run["start"] is False
    # The arguments are a valid `xstilts search` command line ...
    options = build_parser().parse_args(["search", *args])
    assert options.space == "spaces/xtreme.yaml"
    # ... whose relative space path resolves in the head's home: the project is mounted at ~/xstilts
    # and a setup command links ~/spaces to its spaces/.
    config = yaml.safe_load((ROOT / config_file).read_text())
    assert config["file_mounts"].get("~/xstilts") == "."
    assert "ln -sfn ~/xstilts/spaces ~/spaces" in config["setup_commands"], config["setup_commands"]
    assert (ROOT / options.space).is_file()


def test_both_cluster_configs_are_documented() -> None:
    assert {shlex.split(c)[2] for _, c in COMMANDS} >= {"cluster.yaml", "cluster.local.yaml"}, COMMANDS


class RecordingProcessRunner:
    """The ``subprocess`` Ray's command runners call: records commands, answers ``printenv HOME``."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.calls: list[list[str]] = []

    def check_call(self, cmd: list[str], **kwargs: Any) -> int:
        self.calls.append(cmd)
        return 0

    def check_output(self, cmd: list[str], **kwargs: Any) -> bytes:
        self.calls.append(cmd)
        return self.home.encode()


class FakeProvider:
    """The head's addresses, as the AWS node provider would report them."""

    def external_ip(self, node_id: str) -> str:
        return "203.0.113.10"

    def internal_ip(self, node_id: str) -> str:
        return "10.0.0.10"


def head_commands(cmd: str, home: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """(the SSH command to the head, the command run inside the container) for ``ray submit``'s ``cmd``."""
    from ray.autoscaler._private import command_runner

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    inside: list[str] = []
    original = command_runner.with_docker_exec

    def recording_docker_exec(cmds: list[str], **kwargs: Any) -> list[str]:
        inside.extend(cmds)
        return list(original(cmds, **kwargs))

    monkeypatch.setattr(command_runner, "with_docker_exec", recording_docker_exec)
    monkeypatch.setattr(command_runner.SSHCommandRunner, "_ensure_ssh_control_path", lambda self: None)
    process_runner = RecordingProcessRunner(home)
    runner = command_runner.DockerCommandRunner(
        config["docker"],
        log_prefix="",
        node_id="head",
        provider=FakeProvider(),
        auth_config={**config["auth"], "ssh_private_key": "~/.ssh/ray-autoscaler_us-west-2.pem"},
        cluster_name=config["cluster_name"],
        process_runner=process_runner,
        use_internal_ip=False,
    )
    # What ray.autoscaler._private.commands._exec does for `ray submit` (no screen/tmux).
    runner.run(cmd, exit_on_fail=True, port_forward=[], with_output=False, run_env="docker")
    assert len(inside) == 1
    return process_runner.calls[-1], inside[0]


def test_head_runs_main_in_a_login_shell_of_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [c for d, c in COMMANDS if d == "docs/cluster.md" and shlex.split(c)[2] == "cluster.yaml"]
    if not docs:
        pytest.skip("docs/cluster.md has no `ray submit cluster.yaml` command")
    args, _, run = submitted(docs[0], monkeypatch)
    ssh, inside = head_commands(run["cmd"], CONTAINER_HOME, monkeypatch)
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert ssh[0] == "ssh" and f"{config['auth']['ssh_user']}@203.0.113.10" in ssh
    assert f"docker exec -it  {config['docker']['container_name']} " in ssh[-1]
    # A login shell that sources ~/.bashrc, where setup_commands made ~/.xstilts-cluster/env load.
    assert inside.startswith("bash --login -c -i ")
    assert shlex.split(inside)[-1].startswith("source ~/.bashrc;")
    expected = shlex.join(["python", f"{CONTAINER_HOME}/main.py", *args])
    assert f"&& ({expected})" in shlex.split(inside)[-1]
    assert any(
        "~/.xstilts-cluster/env" in cmd and "~/.bashrc" in cmd and "XSTILTS_STORAGE=" in cmd
        for cmd in config["setup_commands"]
    )


# --------------------------------------------------------------------------- the head's command, run here


def home_setup_commands(config: dict[str, Any]) -> list[str]:
    """The config's setup commands that only touch the home directory (no installs, no root, no Docker)."""
    skip = ("pip ", "sudo ", "apt", "docker ", "nvidia-smi")
    return [cmd for cmd in config["setup_commands"] if not any(word in cmd for word in skip)]


@pytest.mark.slow
@pytest.mark.soak
def test_head_command_runs_a_search_from_outside_the_checkout(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studies import driver_env, tail, trial_runs
    from test_multinode import local_cluster, small_space

    started = time.perf_counter()
    # The head's home: the image's .bashrc (Python on PATH), the project mounted at ~/xstilts.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    (home / "xstilts").symlink_to(ROOT, target_is_directory=True)
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    for cmd in home_setup_commands(config):
        result = subprocess.run(
            ["bash", "-c", cmd],
            cwd=home,
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, (cmd, result.stderr)
    assert "source ~/.xstilts-cluster/env" in (home / ".bashrc").read_text()
    # Whatever Ray runs on the head sees the cluster's environment.
    _, probe = head_commands("printenv XSTILTS_STORAGE", str(home), monkeypatch)
    seen = subprocess.run(
        ["bash", "-c", probe], cwd=home, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True
    )
    assert seen.stdout.strip().endswith("/xstilts") and seen.stdout.strip().startswith("s3://"), seen
    _, probe = head_commands("printenv XSTILTS_CACHE", str(home), monkeypatch)
    seen = subprocess.run(
        ["bash", "-c", probe], cwd=home, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True
    )
    assert seen.stdout.strip() == "/mnt/xstilts-shared/cache", seen  # the EFS mount of every node
    # `ray submit` uploads search/main.py as ~/main.py: outside the checkout, next to nothing of it.
    args_for_xtreme = ["--space", "spaces/xtreme.yaml"]
    upload = ray_submit(["submit", "cluster.yaml", "search/main.py", "--", *args_for_xtreme], monkeypatch)
    target = home / upload.uploads[0]["target"].removeprefix("~/")
    shutil.copyfile(ROOT / upload.uploads[0]["source"], target)
    assert not (target.parent.parent / "search").exists()
    # The documented space resolves from the home directory (through ~/spaces).
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from search.space import load_space; print(load_space('spaces/xtreme.yaml').name)",
        ],
        cwd=home,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    # A small search instead of the real one; the same command otherwise.
    space = small_space(home, cache_dir, name="submitted", samples=2)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = ["--space", space.name, "--name", "submitted", "--storage", str(tmp_path / "storage")]
    # The cluster's XSTILTS_CACHE is an EFS mount this machine lacks: a local directory stands in for it.
    args += ["--tracking-uri", uri, "--cache-root", str(tmp_path / "shared-cache")]
    run = ray_submit(["submit", "cluster.yaml", "search/main.py", "--", *args], monkeypatch).commands[0]
    _, inside = head_commands(run["cmd"], str(home), monkeypatch)
    monkeypatch.chdir(tmp_path)

    with local_cluster(workers=2) as cluster:
        import ray

        env = {**driver_env(), "HOME": str(home)}
        env.pop("RAY_ADDRESS", None)  # found as on a head: ray.init() reads the address file of RAY_TMPDIR
        log = tmp_path / "driver.log"
        with log.open("w") as out:
            driver = subprocess.run(
                ["bash", "-c", inside], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=420
            )
        assert driver.returncode == 0, tail(log)
        ray.init(address=cluster.address, log_to_driver=False)
        from ray.tune import ExperimentAnalysis

        trials = ExperimentAnalysis(str(tmp_path / "storage" / "submitted" / "udpos")).trials
        workers = set(cluster.workers)
    stdout = log.read_text(errors="replace")
    assert "udpos: 2 trials, 2 completed, 0 early-stopped, 0 failed" in stdout
    # The driver joined this cluster: its trials trained on the cluster's worker nodes.
    assert {t.last_result["node_id"] for t in trials} <= workers
    runs = trial_runs(uri, "submitted")
    assert len(runs) == 2 and {r.data.tags["xstilts.status"] for r in runs} == {"completed"}
    print(f"\nray submit emulation: search of 2 trials in {time.perf_counter() - started:.0f}s")
