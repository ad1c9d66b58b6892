"""One tracking store resolution for every console script, and tracking's modules importing one way."""

import ast
import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

import seqlab
from seqlab.tracking.store import TRACKING_URI_HELP, tracking_uri

PACKAGE = Path(seqlab.__file__).parent
# the layers this suite owns; a cycle anywhere among them (imports inside functions included) fails
LAYERS = ("seqlab.tracking", "seqlab.reproduce", "seqlab.reports", "seqlab.preflight")


def test_the_store_is_the_given_uri_else_the_environment_else_outputs_under_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_uri(None) == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert tracking_uri(None) == "http://127.0.0.1:9"
    assert tracking_uri("sqlite:///given.db") == "sqlite:///given.db"


@pytest.mark.parametrize(
    "script",
    [
        "seqlab.reproduce.rerun",
        "seqlab.reports.compare",
        "seqlab.tracking.spool",
        "seqlab.reports.nll_averaging",
    ],
)
def test_every_console_script_names_the_same_default_store(script, capsys):
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(script).main(["--help"])
    assert TRACKING_URI_HELP in " ".join(capsys.readouterr().out.split())


def test_seqlab_upload_without_a_uri_sends_to_the_store_every_other_command_uses(tmp_path, monkeypatch):
    # the default store, as `seqlab` would have logged there: a run that ended while its server was down
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri(None))
    run_id = client.create_run(client.create_experiment("upload-default")).info.run_id
    spool = tmp_path / "job" / "mlflow-spool"
    spool.mkdir(parents=True)
    (spool / "metrics.jsonl").write_text(json.dumps([["val/loss", 0.5, int(time.time() * 1000), 3]]) + "\n")
    (spool / "run.json").write_text(
        json.dumps({"run_id": run_id, "status": "FINISHED", "tags": {"seqlab.spool": str(spool)}})
    )

    from seqlab.tracking.spool import main

    main([str(tmp_path / "job")])

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"val/loss": 0.5}
    assert not spool.exists()


def _imports(path: Path, module: str) -> set[str]:
    """Every seqlab module `module` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("seqlab.") and name != module}


def test_the_tracking_reproduce_and_reports_modules_import_without_a_cycle():
    modules = {
        ".".join(("seqlab", *p.relative_to(PACKAGE).with_suffix("").parts)): p for p in PACKAGE.rglob("*.py")
    }
    ours = {m: p for m, p in modules.items() if m.startswith(LAYERS) and not m.endswith("__init__")}
    graph = {m: {i for i in _imports(p, m) if i in ours} for m, p in ours.items()}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in graph[path[-1]]:
            if nxt == start:
                return [*path, start]
            if nxt not in path:
                found = cycle_from(start, [*path, nxt])
                if found:
                    return found
        return None

    cycles = [c for m in sorted(graph) if (c := cycle_from(m, [m]))]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])
