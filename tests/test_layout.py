"""search/layout.py (where a search keeps what it writes, what it is called) and the read/decide/render split."""

from __future__ import annotations

from pathlib import Path

from test_layering import imported_modules

from search.layout import DEFAULT_STORAGE, SearchLayout

SEARCH = Path(__file__).resolve().parents[1] / "search"


def test_a_local_storage_holds_everything_under_the_search(tmp_path: Path) -> None:
    layout = SearchLayout("demo", str(tmp_path / "searches"))
    root = (tmp_path / "searches").resolve()
    assert layout.experiment_name == "xstilts-demo"
    assert layout.study_name("udpos") == "demo.udpos"
    assert layout.tune_path("udpos") == f"{root}/demo/udpos"
    assert layout.train_storage == f"{root}/demo/train"
    assert layout.local_root == root / "demo"
    assert layout.optuna_db == root / "demo" / "optuna.db"
    assert layout.optuna_url == f"sqlite:///{root / 'demo' / 'optuna.db'}"
    assert layout.journal("udpos") == root / "demo" / "mlflow-journal" / "udpos.jsonl"


def test_a_remote_storage_keeps_driver_state_in_the_home_directory() -> None:
    layout = SearchLayout("demo", "s3://bucket/searches")
    assert layout.tune_path("panx") == "s3://bucket/searches/demo/panx"
    assert layout.local_root == Path("~/.xstilts").expanduser().resolve() / "demo"
    assert SearchLayout("demo").storage == DEFAULT_STORAGE


def test_experiment_names_map_back_to_searches() -> None:
    assert SearchLayout.search_of(SearchLayout("a.b-c").experiment_name) == "a.b-c"
    assert SearchLayout.search_of("Default") is None


def test_report_reads_and_renders_without_select() -> None:
    # Read (results), decide (select), render (report, select_output, report_plots): report never
    # reaches into select, and the renderers import select's types only for annotations.
    for name in ("report.py", "report_plots.py", "results.py", "layout.py"):
        found = imported_modules(SEARCH / name, "search")
        assert not {m for m in found if m == "search.select" or m.startswith("search.select.")}, name
    assert not [
        m for m in imported_modules(SEARCH / "layout.py", "search") if m.split(".")[0] in ("search", "ray")
    ]
