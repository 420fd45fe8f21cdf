"""Each local server's BentoML home: the model store shared, the Prometheus multiprocess folder its own.

BentoML empties `<home>/prometheus_multiproc_dir` when a server starts; two servers of one home (the demo's
preview and active, the benchmarks' archive-off and archive-on servers) would wipe each other's series and
each export the other's."""

from pathlib import Path

from spira.local_server import private_home


def _shared_home(tmp_path: Path) -> Path:
    shared = tmp_path / "bentoml"
    (shared / "models" / "spira-respiratory" / "v1").mkdir(parents=True)
    (shared / "models" / "spira-respiratory" / "v1" / "model.yaml").write_text("name: spira-respiratory\n")
    (shared / "bentos").mkdir()
    (shared / "client_id").write_text("abc\n")
    (shared / "prometheus_multiproc_dir").mkdir()
    (shared / "prometheus_multiproc_dir" / "counter_1.db").write_bytes(b"\0")
    (shared / "tmp").mkdir()
    return shared


def test_a_servers_home_links_the_model_store_it_was_imported_into(tmp_path):
    shared = _shared_home(tmp_path)
    home = private_home(shared, tmp_path / "run" / "preview-bentoml")
    assert (home / "models").is_symlink()
    assert (
        home / "models" / "spira-respiratory" / "v1" / "model.yaml"
    ).read_text() == "name: spira-respiratory\n"
    assert (home / "bentos").resolve() == (shared / "bentos").resolve()
    assert (home / "client_id").read_text() == "abc\n"


def test_two_servers_of_one_home_get_metrics_folders_of_their_own(tmp_path):
    shared = _shared_home(tmp_path)
    preview = private_home(shared, tmp_path / "run" / "preview-bentoml")
    active = private_home(shared, tmp_path / "run" / "active-bentoml")
    for home in (preview, active):
        assert not (home / "prometheus_multiproc_dir").exists()  # BentoML creates it, in this home
        assert not (home / "tmp").exists()
    (preview / "prometheus_multiproc_dir").mkdir()
    assert not (active / "prometheus_multiproc_dir").exists()
    assert (shared / "prometheus_multiproc_dir" / "counter_1.db").exists()


def test_a_restarted_server_keeps_its_home(tmp_path):
    shared = _shared_home(tmp_path)
    home = private_home(shared, tmp_path / "run" / "preview-bentoml")
    (home / "prometheus_multiproc_dir").mkdir()
    assert private_home(shared, home) == home
    assert (home / "models").is_symlink()
    assert (home / "prometheus_multiproc_dir").is_dir()
