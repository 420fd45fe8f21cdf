from __future__ import annotations

from typer.testing import CliRunner

from spira.manifests import check, render
from spira.manifests.checkov_scan import CheckovFailure
from spira.manifests.cli import app
from tests.fakes.manifests import RecordingCheckov


def test_render_prints_the_overlay_for_an_environment():
    result = CliRunner().invoke(app, ["render", "production"])
    assert result.exit_code == 0
    assert "value: spira-production-serving" in result.stdout


def test_render_of_an_unknown_environment_exits_2():
    result = CliRunner().invoke(app, ["render", "qa"])
    assert result.exit_code == 2


def test_the_whole_check_passes_on_the_repository_and_scans_every_environment():
    scanner = RecordingCheckov()
    assert check.run(scanner=scanner) == []
    assert len(scanner.scanned) == len(render.ENVIRONMENTS)


def test_a_checkov_failure_fails_the_check():
    scanner = RecordingCheckov(
        [CheckovFailure("CKV_K8S_22", "read-only root", "Deployment.spira.spira-model")]
    )
    findings = check.run(envs=["staging"], scanner=scanner)
    assert [f.check for f in findings] == ["checkov"]


def test_a_render_failure_is_reported_and_the_other_environments_are_still_checked():
    def renderer(env: str) -> str:
        if env == "production":
            raise render.RenderError("kustomize build failed")
        return render.render(env)

    findings = check.run(envs=["staging", "production"], scanner=RecordingCheckov(), renderer=renderer)
    assert [(f.check, f.where) for f in findings] == [("render", "production")]
