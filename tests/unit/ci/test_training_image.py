"""The training images: the CPU one is built and played by the e2e tests; the GPU one (no GPU here) is checked
here: the CUDA torch pin from the lock, and the same project code, user and entry point as the CPU one."""

from __future__ import annotations

import re
from pathlib import Path

from ci.build import IMAGES, TRAINING_CONTEXT
from ci.lock import parse_lock
from ci.wheelhouse import TORCH_FLAVOURS, WheelhouseSpec

REPO = Path(__file__).resolve().parents[3]
LOCK = (REPO / "requirements.lock").read_text()
FLAVOUR_DEPENDENT = re.compile(r"^(ARG TORCH_FLAVOUR=|LABEL |ENV )")


def instructions(path: str) -> list[str]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / path).read_text().replace("\\\n", " ")
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_both_training_images_install_the_training_extras_from_their_hashed_wheelhouse():
    for name in ("training", "training-gpu"):
        spec = IMAGES[name]
        assert {"torch", "mlflow", "boto3", "typer", "rich", "hvac"} <= set(spec.requirements(REPO)), name
        assert spec.uses_torch and spec.context == TRAINING_CONTEXT
        installs = [i for i in instructions(spec.containerfile) if "pip install" in i]
        assert len(installs) == 1 and "--no-index" in installs[0]
        assert "--require-hashes -r /wheels/requirements.txt" in installs[0]


def test_the_gpu_image_pins_the_locks_torch_version_with_the_cuda_label():
    assert IMAGES["training"].torch_flavour == "cpu" and IMAGES["training-gpu"].torch_flavour == "cuda"
    spec = IMAGES["training-gpu"]
    wheels = WheelhouseSpec(spec.name, tuple(spec.requirements(REPO)), LOCK, spec.torch_flavour)
    locked = parse_lock(LOCK)["torch"].version.split("+")[0]
    assert parse_lock(wheels.constraints())["torch"].version == f"{locked}+{TORCH_FLAVOURS['cuda']}"
    # the build fails when the wheelhouse carries a torch without CUDA
    gpu = instructions(spec.containerfile)
    assert gpu.count("ARG TORCH_FLAVOUR=cuda") == 2 and not any("TORCH_FLAVOUR=cpu" in i for i in gpu)
    assert any(
        "torch.version.cuda is not None" in i and "want = '${TORCH_FLAVOUR}' == 'cuda'" in i for i in gpu
    )


def test_the_gpu_image_is_the_cpu_image_instruction_for_instruction_but_the_flavour():
    cpu = instructions(IMAGES["training"].containerfile)
    gpu = instructions(IMAGES["training-gpu"].containerfile)
    same = [i for i in cpu if not FLAVOUR_DEPENDENT.match(i)]
    assert same == [i for i in gpu if not FLAVOUR_DEPENDENT.match(i)]
    assert "COPY src /opt/spira" in same and "USER 10001:10001" in same
    assert 'ENTRYPOINT ["spira"]' in same
    env = next(i for i in gpu if i.startswith("ENV "))
    assert next(i for i in cpu if i.startswith("ENV ")) in env, "the GPU image sets what the CPU one sets"


def test_the_training_image_carries_the_stage_code_and_no_other_operator_module():
    sources = set(TRAINING_CONTEXT)
    assert {"spira_core", "training"} <= sources
    assert {s for s in sources if s.startswith("spira/")} == {
        "spira/__init__.py",
        "spira/cli.py",
        "spira/workload.py",
        # the workflow's candidate step (`spira workflow candidate`), not the render or its infra
        "spira/workflow/__init__.py",
        "spira/workflow/cli.py",
        "spira/workflow/play_cli.py",
        "spira/workflow/candidate.py",
    }
    for src, dst in TRAINING_CONTEXT.items():
        assert (REPO / src).exists() and dst == f"src/{src}"
