"""Loading checkpoints: diffusers folders, single files, the Hub cache, LoRA, and clear errors.

All offline (conftest sets HF_HUB_OFFLINE), on the tiny random-weight checkpoint.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from riffusion.diffusion import checkpoints
from riffusion.diffusion.checkpoints import load_stable_diffusion, resolve_dtype
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.errors import RiffusionError
from riffusion.testing import make_tiny_checkpoint, make_tiny_lora, write_single_file_checkpoint

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def state_dicts(pipe) -> dict[str, dict[str, torch.Tensor]]:
    return {name: getattr(pipe, name).state_dict() for name in ("unet", "vae", "text_encoder")}


def assert_same_weights(a, b) -> None:
    for name, weights in state_dicts(a).items():
        other = state_dicts(b)[name]
        assert weights.keys() == other.keys(), name
        for key, value in weights.items():
            assert torch.equal(value, other[key]), f"{name}.{key}"


@pytest.fixture(scope="module")
def folder_pipe(tiny_checkpoint: Path):
    return load_stable_diffusion(tiny_checkpoint, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with different weights (seed 1)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny1") / "model", seed=1)


def fake_hub_cache(cache_dir: Path, checkpoint: Path, repo_id: str, revision: str) -> Path:
    """Lay checkpoint out as huggingface_hub caches a downloaded repository."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(checkpoint, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / revision).write_text(COMMIT)
    return cache_dir


def test_folder_loads_like_riffusion_model_v1(tiny_checkpoint: Path, folder_pipe) -> None:
    assert folder_pipe.safety_checker is None
    assert type(folder_pipe.scheduler).__name__ == "PNDMScheduler"
    assert folder_pipe.scheduler.config.steps_offset == 1
    assert folder_pipe.scheduler.config.skip_prk_steps
    assert folder_pipe.tokenizer.model_max_length == 77
    assert folder_pipe.tokenizer("jazz piano").input_ids == [49406, 4528, 7894, 49407]
    assert folder_pipe.unet.dtype == torch.float32
    assert folder_pipe.device.type == "cpu"


def test_tiny_checkpoint_is_deterministic(tmp_path: Path, tiny_checkpoint: Path) -> None:
    again = make_tiny_checkpoint(tmp_path / "again", seed=0)
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (again / part).read_bytes() == (tiny_checkpoint / part).read_bytes()


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_file_loads_its_own_weights(
    tmp_path: Path, tiny_checkpoint: Path, other_checkpoint: Path, suffix: str
) -> None:
    # The file holds seed-1 weights; the seed-0 folder only supplies configs and tokenizer.
    single = write_single_file_checkpoint(other_checkpoint, tmp_path / f"model{suffix}")
    from_file = load_stable_diffusion(single, config=tiny_checkpoint, dtype="float32")
    from_folder = load_stable_diffusion(other_checkpoint, dtype="float32")
    assert_same_weights(from_file, from_folder)
    assert from_file.safety_checker is None
    assert type(from_file.scheduler).__name__ == "PNDMScheduler"


def test_single_file_without_configs_offline(tmp_path: Path, tiny_checkpoint: Path) -> None:
    single = write_single_file_checkpoint(tiny_checkpoint, tmp_path / "model.safetensors")
    with pytest.raises(RiffusionError, match="configs and tokenizer"):
        load_stable_diffusion(single, cache_dir=tmp_path / "empty-cache")


def test_hub_id_loads_from_the_cache_offline(
    tmp_path: Path, tiny_checkpoint: Path, folder_pipe
) -> None:
    cache = fake_hub_cache(tmp_path, tiny_checkpoint, "riffusion/riffusion-model-v1", "main")
    pipe = RiffusionPipeline.load_checkpoint(cache_dir=cache, dtype="float32")
    assert_same_weights(pipe, folder_pipe)


def test_hub_revision_is_honoured(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cache = fake_hub_cache(tmp_path, tiny_checkpoint, "someone/music-model", "v2")
    assert load_stable_diffusion("someone/music-model", revision="v2", cache_dir=cache)
    with pytest.raises(RiffusionError, match="someone/music-model"):
        load_stable_diffusion("someone/music-model", revision="v3", cache_dir=cache)


def test_missing_hub_model_offline_says_where_weights_come_from(tmp_path: Path) -> None:
    with pytest.raises(RiffusionError) as error:
        RiffusionPipeline.load_checkpoint(cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "https://huggingface.co/riffusion/riffusion-model-v1" in message
    assert "--model" in message
    assert "cannot be reached" in message


@pytest.mark.parametrize(
    "name", ["./no-such-model", "no/such/model", "/no/such/model.ckpt", "missing.safetensors"]
)
def test_missing_path(name: str) -> None:
    with pytest.raises(RiffusionError, match="no such file or folder"):
        load_stable_diffusion(name)


def test_folder_without_model_index(tiny_checkpoint: Path) -> None:
    with pytest.raises(RiffusionError, match="not a diffusers model folder"):
        load_stable_diffusion(tiny_checkpoint / "unet")


def test_file_of_the_wrong_kind(tiny_checkpoint: Path) -> None:
    with pytest.raises(RiffusionError, match="not a model checkpoint"):
        load_stable_diffusion(tiny_checkpoint / "model_index.json")


def test_broken_folder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    broken = Path(shutil.copytree(tiny_checkpoint, tmp_path / "broken"))
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(RiffusionError, match=r"broken: could not load the model") as error:
        load_stable_diffusion(broken)
    assert "\n" not in str(error.value)


def test_corrupt_single_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.safetensors"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(RiffusionError, match="could not load the model"):
        load_stable_diffusion(corrupt, config=tmp_path)


def test_lora_changes_the_unet_and_scale_zero_does_not(
    tmp_path: Path, tiny_checkpoint: Path, folder_pipe
) -> None:
    lora = make_tiny_lora(tmp_path / "lora.safetensors", tiny_checkpoint)
    merged = load_stable_diffusion(tiny_checkpoint, dtype="float32", lora=lora)
    base_unet, merged_unet = folder_pipe.unet.state_dict(), merged.unet.state_dict()
    # Fused and unloaded: the same plain parameters, some with new values.
    assert base_unet.keys() == merged_unet.keys()
    assert any(not torch.equal(base_unet[key], merged_unet[key]) for key in base_unet)

    unscaled = load_stable_diffusion(tiny_checkpoint, dtype="float32", lora=[lora], lora_scale=0)
    assert_same_weights(unscaled, folder_pipe)


def test_bad_lora(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(RiffusionError, match="no such LoRA"):
        load_stable_diffusion(tiny_checkpoint, lora=tmp_path / "missing.safetensors")
    with pytest.raises(RiffusionError, match="could not load LoRA weights"):
        load_stable_diffusion(
            tiny_checkpoint, lora=tiny_checkpoint / "vae" / "diffusion_pytorch_model.safetensors"
        )


def test_dtype_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype(None, torch.device("cuda")) == torch.float16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    monkeypatch.setattr(checkpoints, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype(None, cpu) == torch.bfloat16
    monkeypatch.setattr(checkpoints, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("fp16", cpu) == torch.float16
    assert resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(RiffusionError, match="unknown dtype 'float8'"):
        resolve_dtype("float8", cpu)


def test_unavailable_device(tiny_checkpoint: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RiffusionError, match="CUDA is not available"):
        load_stable_diffusion(tiny_checkpoint, device="cuda")


def chained(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def hub_http_error(cls: type[Exception]) -> Exception:
    """An instance of one of huggingface_hub's HTTP errors, without a real HTTP response."""
    error = cls.__new__(cls)
    Exception.__init__(error, "HTTP error")
    return error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (chained(OSError("not cached"), socket.gaierror(-2, "Name unknown")), "cannot be reached"),
        (chained(OSError("not cached"), TimeoutError()), "cannot be reached"),
        (
            hub_http_error(RepositoryNotFoundError),
            "there is no model 'a/b' on the Hugging Face Hub",
        ),
        (hub_http_error(RevisionNotFoundError), "has no revision 'v9'"),
        (hub_http_error(GatedRepoError), "is gated"),
        (ValueError("odd failure"), "ValueError: odd failure"),
    ],
)
def test_hub_failures_are_explained(error: BaseException, message: str) -> None:
    explained = str(checkpoints.hub_error("a/b", "v9", error))
    assert message in explained
    assert "--model" in explained and "\n" not in explained
