"""``xstilts run`` with bad input: one clear error line on stderr, exit code 2, before any compute, no writes."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import refusing_server

import search.run
from search.checks import TRACKING_SCHEMES
from search.cli import main
from trainers.data.miniature import ensure_miniature
from trainers.tasks import get_task

# (id, --set overrides, a fragment the error line must contain). "{bad_columns}" is the local data dir
# whose PAWS-X English train file lacks the hub's ``sentence1`` column.
CASES: list[tuple[str, list[str], str]] = [
    ("unknown-task", ["target.task=foo"], "target.task: unknown task 'foo'"),
    ("unknown-language", ["evaluation.languages=[xx]"], "evaluation.languages: pawsx has no data for xx"),
    (
        "wrong-columns",
        ["data.source=local", "data.data_dir={bad_columns}"],
        "pawsx/en/train.jsonl has no column 'sentence1'",
    ),
    ("missing-data-dir", ["data.source=local", "data.data_dir=/nonexistent"], "/nonexistent does not exist"),
    ("freeze-depth", ["target.freeze_depth=9"], "target.freeze_depth=9 is out of range"),
    (
        "intermediate-freeze-depth",
        ["intermediate.freeze_depth=3"],
        "intermediate.freeze_depth=3 is out of range",
    ),
    ("zero-stage", ["deepspeed.zero_stage=7"], "deepspeed.zero_stage must be 0, 1, 2 or 3, got 7"),
    (
        "retrieval-intermediate",
        ["target.task=bucc", "intermediate.tasks=[bucc]"],
        "intermediate.tasks: bucc is a retrieval task",
    ),
    (
        "retrieval-target-freeze",
        ["target.task=tatoeba", "target.freeze_depth=1"],
        "target.freeze_depth: tatoeba is a retrieval target and has no target phase",
    ),
    ("not-a-target", ["target.task=mnli"], "target.task: mnli is an intermediate task, not an XTREME target"),
    ("batch-size-0", ["target.batch_size=0"], "target.batch_size must be >= 1, got 0"),
    (
        "intermediate-batch-size-0",
        ["intermediate.batch_size=0"],
        "intermediate.batch_size must be >= 1, got 0",
    ),
    ("unknown-key", ["target.lr=0.1"], "unknown key target.lr"),
    ("bad-override", ["target.learning_rate"], "must look like key.sub=value"),
    ("bad-yaml", [], "not valid YAML"),
    ("not-utf8", [], "not UTF-8 text"),
    ("missing-model", ["model.name_or_path=/no/such/model"], "/no/such/model: no such directory"),
    (
        "model-dir-not-a-model",
        ["model.name_or_path=/"],
        "model.name_or_path /: the directory has no config.json",
    ),
]


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and directory under ``root`` with its mtime and content (to prove nothing was written)."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        content = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (path.stat().st_mtime_ns, content)
    return found


@pytest.fixture(scope="module")
def bad_columns(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local data dir: the miniature's QQP and PAWS-X, with ``sentence1`` renamed in PAWS-X's English train."""
    root = tmp_path_factory.mktemp("bad-columns")
    for task in ("qqp", "pawsx"):
        shutil.copytree(ensure_miniature(cache_dir / "data") / task, root / task)
    train = root / "pawsx" / "en" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    train.write_text(
        "".join(
            json.dumps({"text1" if k == "sentence1" else k: v for k, v in row.items()}) + "\n" for row in rows
        )
    )
    return root


@pytest.mark.parametrize("existing", [False, True], ids=["fresh-output", "existing-output"])
@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_before_compute(
    overrides: list[str],
    message: str,
    existing: bool,
    bad_columns: Path,
    tiny_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output_dir = tmp_path / "out"
    config_path = tmp_path / "config.yaml"
    if message == "not valid YAML":
        config_path.write_text(f"output_dir: {output_dir}\ntarget: [pawsx\n  task: {{\n")
    elif message == "not UTF-8 text":
        config_path.write_bytes(f"output_dir: {output_dir}\n# caf\xe9\n".encode("latin-1"))
    else:
        tiny_config(output_dir, "pawsx", ["qqp"]).save(config_path)
    if existing:
        output_dir.mkdir()
        (output_dir / "keep.txt").write_text("from an earlier run\n")
    monkeypatch.chdir(tmp_path)  # relative paths (e.g. a default output_dir) would land in the snapshot too
    before = _tree(tmp_path)

    def no_compute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("bad input reached run_transfer: it was not rejected before compute")

    monkeypatch.setattr(search.run, "run_transfer", no_compute)
    argv = ["run", "--config", str(config_path), "--backend", "local"]
    for override in overrides:
        argv += ["--set", override.format(bad_columns=bad_columns)]

    code = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, f"expected one error line, got:\n{captured.err}"
    assert lines[0].startswith("xstilts: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert captured.out == ""
    assert _tree(tmp_path) == before  # nothing written: no output dir, the existing file untouched
    assert output_dir.exists() == existing


# -- the hub: a model or dataset it does not have, a hub that cannot be reached, offline mode --------------


def _pinned_revision(task: str) -> str:
    hub = get_task(task).hub
    assert hub is not None and hub.revision is not None
    return hub.revision


SIQA_REVISION = _pinned_revision("siqa")
"""The commit of allenai/social_i_qa's parquet conversion that siqa reads."""


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """The hub's repo-info API for the ids in ``known``; any other id answers 404 RepoNotFound, as the hub does."""

    known: frozenset[str] = frozenset()
    gone_revisions: frozenset[str] = frozenset()
    """Revisions of known ids the hub does not have (404 RevisionNotFound); it has every other one."""

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].split("/")  # /api/{models,datasets}/<id>[/revision/...]
        repo_id = "/".join(parts[3:5]) if len(parts) > 4 and parts[4] != "revision" else parts[3]
        revision = parts[parts.index("revision") + 1] if "revision" in parts[4:] else None
        if f"{parts[2]}/{repo_id}" in self.known and revision in self.gone_revisions:
            body = b'{"error": "Revision not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RevisionNotFound")
        elif f"{parts[2]}/{repo_id}" in self.known:
            body = json.dumps({"id": repo_id, "sha": "0" * 40}).encode()
            self.send_response(200)
        else:
            body = b'{"error": "Repository not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_hub() -> Iterator[str]:
    """A local stand-in for huggingface.co that knows the model xlm-roberta-base and the datasets nyu-mll/glue
    and allenai/social_i_qa, the latter without the revision that siqa pins."""
    known = frozenset({"models/xlm-roberta-base", "datasets/nyu-mll/glue", "datasets/allenai/social_i_qa"})
    gone = frozenset({SIQA_REVISION})
    handler = type("Hub", (_FakeHub,), {"known": known, "gone_revisions": gone})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# (id, environment, --set overrides, a fragment the error line must contain). "{hub}" is the fake hub.
HUB_CASES: list[tuple[str, dict[str, str], list[str], str]] = [
    (
        "model-not-on-hub",
        {"HF_ENDPOINT": "{hub}"},
        ["model.name_or_path=nobody/no-such-model"],
        "model.name_or_path nobody/no-such-model: no model nobody/no-such-model on the hub",
    ),
    (
        "dataset-not-on-hub",
        {"HF_ENDPOINT": "{hub}"},
        ["data.source=hub", "intermediate.tasks=[qqp]"],
        # qqp's nyu-mll/glue is known; the target's dataset is not
        "data.source=hub: pawsx (google-research-datasets/paws-x): no dataset google-research-datasets/paws-x on the hub",
    ),
    (
        "dataset-revision-not-on-hub",
        {"HF_ENDPOINT": "{hub}"},
        ["data.source=hub", "intermediate.tasks=[siqa]"],
        # the hub has allenai/social_i_qa but no longer the commit siqa pins
        f"data.source=hub: siqa (allenai/social_i_qa): no revision {SIQA_REVISION} of dataset allenai/social_i_qa",
    ),
    (
        "model-hub-unreachable",
        {"HF_ENDPOINT": "http://127.0.0.1:{closed}"},
        ["model.name_or_path=xlm-roberta-base"],
        "model.name_or_path xlm-roberta-base: the hub http://127.0.0.1:",
    ),
    (
        "data-hub-unreachable",
        {"HF_ENDPOINT": "http://127.0.0.1:{closed}"},
        ["data.source=hub", "intermediate.tasks=[mnli]"],
        "data.source=hub: mnli (nyu-mll/glue): the hub http://127.0.0.1:",
    ),
    (
        "model-offline-not-cached",
        {"HF_HUB_OFFLINE": "1"},
        ["model.name_or_path=nobody/not-cached-model"],
        "not in the local Hugging Face cache, and the hub is off (HF_HUB_OFFLINE)",
    ),
    (
        "data-offline-not-cached",
        {"HF_HUB_OFFLINE": "1"},
        ["data.source=hub", "intermediate.tasks=[mnli]"],
        "mnli (nyu-mll/glue) is not in the local datasets cache, and the hub is off (HF_HUB_OFFLINE)",
    ),
]


@pytest.mark.parametrize(
    ("env", "overrides", "message"), [c[1:] for c in HUB_CASES], ids=[c[0] for c in HUB_CASES]
)
def test_what_the_hub_cannot_give_fails_in_one_line_before_any_job(
    env: dict[str, str],
    overrides: list[str],
    message: str,
    fake_hub: str,
    tiny_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    closed = _closed_port()
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(hub=fake_hub, closed=closed))
    # Empty caches: nothing is found locally, so every answer comes from the (fake or absent) hub.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    config_path = tmp_path / "config.yaml"
    tiny_config(tmp_path / "out", "pawsx", ["qqp"]).save(config_path)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)

    def no_compute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a config the hub cannot serve reached run_transfer")

    monkeypatch.setattr(search.run, "run_transfer", no_compute)
    argv = ["run", "--config", str(config_path)]
    for override in overrides:
        argv += ["--set", override]

    code = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("xstilts: error: "), captured.err
    assert message in lines[0], lines[0]
    assert _tree(tmp_path) == before


# -- xstilts search: the name, the space file and the tracking URI are checked before anything is written --


@pytest.fixture
def refusing() -> Iterator[str]:
    """A tracking server that wants credentials (a stand-in: /health 200, the API 401)."""
    with refusing_server() as url:
        yield url


SEARCH_CASES: list[tuple[str, list[str], str]] = [
    ("name-escapes-storage", ["--name", "../../etc"], "search name '../../etc' is not allowed"),
    ("name-with-separator", ["--name", "a/b"], "search name 'a/b' is not allowed"),
    ("name-dot-dot", ["--name", "a..b"], "search name 'a..b' is not allowed"),
    ("name-hidden", ["--name", ".hidden"], "search name '.hidden' is not allowed"),
    ("space-not-utf8", ["--space", "{latin1_space}"], "not UTF-8 text (byte"),
    ("space-name-escapes", ["--space", "{escaping_space}"], "name: search name '../up' is not allowed"),
    ("tracking-uri-scheme", ["--tracking-uri", "ftp://x"], "MLflow has no tracking store for ftp://"),
    ("tracking-uri-unreachable", ["--tracking-uri", "http://127.0.0.1:{closed}"], "is unreachable"),
    (
        "tracking-needs-credentials",
        ["--tracking-uri", "{refusing}"],
        "refused the request (401): set MLFLOW_TRACKING_USERNAME",
    ),
]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES])
def test_bad_search_input_fails_in_one_line_and_writes_nothing(
    args: list[str],
    message: str,
    refusing: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = Path(search.run.__file__).resolve().parents[1] / "spaces" / "demo.yaml"
    text = demo.read_text(encoding="utf-8")
    (tmp_path / "latin1.yaml").write_bytes(("# café\n" + text).encode("latin-1"))
    (tmp_path / "escaping.yaml").write_text(text.replace("name: demo", "name: ../up"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    values = {"latin1_space": tmp_path / "latin1.yaml", "escaping_space": tmp_path / "escaping.yaml"}
    values["closed"] = _closed_port()  # type: ignore[assignment]
    values["refusing"] = refusing  # type: ignore[assignment]
    argv = ["search", "--space", str(demo), "--storage", str(tmp_path / "storage")]
    argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"]
    argv += [arg.format(**values) for arg in args]  # later options win over the defaults above
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    code = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("xstilts: error: "), captured.err
    assert message in lines[0], lines[0]
    assert _tree(tmp_path) == before  # no storage directory, no tracking store, nothing outside tmp_path


def test_accepted_tracking_schemes_are_mlflow_s() -> None:
    """The import-free scheme list matches the stores MLflow's registry builds (Unity Catalog aside)."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    registered = {scheme for scheme in _tracking_store_registry._registry if "uc" not in scheme}
    assert registered == set(TRACKING_SCHEMES)


HEAVY = ("torch", "ray", "mlflow", "deepspeed", "transformers", "datasets", "torchmetrics", "optuna")
"""What the CLI must not import before its arguments and configs are known to be good."""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["run", "--set", "target.batch_size=0"],
        ["run", "--set", "model.name_or_path=/no/such/model"],
        ["run", "--config", "/no/such.yaml"],
        ["search", "--name", "../../etc"],
        ["search", "--space", "/no/such.yaml"],
        ["search", "--tracking-uri", "ftp://x"],
    ],
    ids=lambda argv: "_".join(argv),
)
def test_help_and_bad_input_answer_without_the_trainer_stack(argv: list[str], tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from search.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules), 'CODE', code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip().splitlines()[-1] == f"LOADED [] CODE {0 if '--help' in argv else 2}", (
        done.stdout + done.stderr
    )
    assert argv[-1] == "--help" or done.stderr.startswith("xstilts: error: "), done.stderr
    assert list(tmp_path.iterdir()) == []
