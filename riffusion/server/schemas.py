"""The server's JSON: the original riffusion API's InferenceInput / InferenceOutput, health, seed
lists and the jam WebSocket's messages, as pydantic models with the limits docs/api.md states.

Request models ignore unknown fields, as the original server did. Numbers are strict where a
mistyped value would otherwise be silently converted: integers refuse 1.5, "1" and true (but take
1.0, which JSON Schema counts as an integer and JavaScript clients may send); numbers refuse true
and strings. Fractions a hair outside [0, 1] (FRACTION_TOLERANCE) are taken as the bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from riffusion.diffusion.inputs import MAX_SEED, InferenceInput, PromptInput
from riffusion.diffusion.presets import PresetName, resolve_preset
from riffusion.jam import JamState
from riffusion.server.limits import (
    FRACTION_TOLERANCE,
    MAX_CLIPS_AHEAD,
    MAX_DATA_URL_CHARS,
    MAX_GUIDANCE,
    MAX_ID_CHARS,
    MAX_PROMPT_CHARS,
    MAX_STEPS,
)

if TYPE_CHECKING:
    from riffusion.server.clip_service import ReplicaState


def _integral_float_to_int(value: Any) -> Any:
    """1.0 as 1, since JavaScript has only floats; anything else is left to strict validation
    (which refuses 1.5, "1" and true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _clamp_fraction(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _none_if_empty(value: str | None) -> str | None:
    return value or None


_WHOLE = BeforeValidator(_integral_float_to_int)

Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED, description="0 to 2**64 - 1"), _WHOLE]
Fraction = Annotated[
    float,
    Field(
        strict=True,
        ge=-FRACTION_TOLERANCE,
        le=1.0 + FRACTION_TOLERANCE,
        description=f"0 to 1; values within {FRACTION_TOLERANCE:g} outside are taken as 0 or 1",
    ),
    AfterValidator(_clamp_fraction),
]
Guidance = Annotated[
    float,
    Field(strict=True, ge=0.0, le=MAX_GUIDANCE, description="classifier-free guidance scale"),
]
Steps = Annotated[
    int,
    Field(strict=True, ge=1, le=MAX_STEPS, description="diffusion steps of the full schedule"),
    _WHOLE,
]
Prompt = Annotated[str, Field(strict=True, max_length=MAX_PROMPT_CHARS)]
ImageId = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_ID_CHARS)]
LoraId = Annotated[
    str,
    Field(
        strict=True,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="a LoRA id from GET /api/loras; absent or null: the model alone",
    ),
]
Preset = Annotated[
    PresetName,
    Field(description="generation preset (GET /api/presets); absent: the server's (--preset)"),
]
MaskId = Annotated[
    Annotated[str, Field(strict=True, max_length=MAX_ID_CHARS)] | None,
    AfterValidator(_none_if_empty),
    Field(description='an id from GET /api/masks; null or "" for no mask'),
]
AlphaVelocity = Annotated[
    float,
    Field(
        strict=True,
        gt=0.0,
        le=1.0 + FRACTION_TOLERANCE,
        description=f"alpha step per clip: above 0, at most 1 (+{FRACTION_TOLERANCE:g}: 1)",
    ),
    AfterValidator(_clamp_fraction),
]
Index = Annotated[int, Field(strict=True, ge=0), _WHOLE]
ClipsAhead = Annotated[int, Field(strict=True, ge=1, le=MAX_CLIPS_AHEAD), _WHOLE]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- The original riffusion API -----------------------------------------------------------------


class PromptInputModel(_Request):
    """One end of the interpolation (the original's PromptInput)."""

    prompt: Prompt
    seed: Seed
    negative_prompt: Prompt | None = None
    denoising: Fraction = 0.75
    guidance: Guidance = 7.0

    def to_prompt_input(self) -> PromptInput:
        return PromptInput(
            prompt=self.prompt,
            seed=self.seed,
            negative_prompt=self.negative_prompt,
            denoising=self.denoising,
            guidance=self.guidance,
        )

    @classmethod
    def from_prompt_input(cls, prompt: PromptInput) -> PromptInputModel:
        return cls(
            prompt=prompt.prompt,
            seed=prompt.seed,
            negative_prompt=prompt.negative_prompt,
            denoising=prompt.denoising,
            guidance=prompt.guidance,
        )


class InferenceInputModel(_Request):
    """A generation request (the original's InferenceInput): start, end and where between."""

    alpha: Fraction
    num_inference_steps: Steps = 50
    seed_image_id: ImageId = "og_beat"
    mask_image_id: MaskId = None
    start: PromptInputModel
    end: PromptInputModel
    preset: Preset | None = None
    lora: LoraId | None = None

    def to_inference_input(self, default_preset: PresetName = "quality") -> InferenceInput:
        """The generation asked for; without a preset, default_preset's (see
        presets.resolve_preset for the step count then)."""
        given = "num_inference_steps" in self.model_fields_set
        preset, steps = resolve_preset(
            self.preset, self.num_inference_steps if given else None, default_preset
        )
        return InferenceInput(
            start=self.start.to_prompt_input(),
            end=self.end.to_prompt_input(),
            alpha=self.alpha,
            num_inference_steps=steps,
            seed_image_id=self.seed_image_id,
            mask_image_id=self.mask_image_id,
            preset=preset,
            lora=self.lora,
        )

    @classmethod
    def from_inference_input(cls, inputs: InferenceInput) -> InferenceInputModel:
        return cls(
            alpha=inputs.alpha,
            num_inference_steps=inputs.num_inference_steps,
            seed_image_id=inputs.seed_image_id,
            mask_image_id=inputs.mask_image_id,
            start=PromptInputModel.from_prompt_input(inputs.start),
            end=PromptInputModel.from_prompt_input(inputs.end),
            preset=inputs.preset,
            lora=inputs.lora,
        )


class InferenceOutputModel(BaseModel):
    """A generated clip (the original's InferenceOutput)."""

    image: str = Field(description="the spectrogram, data:image/jpeg;base64,...")
    audio: str = Field(description="its sound, data:audio/mpeg;base64,... (MP3)")
    duration_s: float = Field(description="length of the audio, seconds")


# --- Studio ------------------------------------------------------------------------------------

DataUrl = Annotated[str, Field(strict=True, max_length=MAX_DATA_URL_CHARS)]


class ImageToAudioModel(_Request):
    image: DataUrl = Field(description="a spectrogram image, data:image/png;base64,...")


class AudioOutputModel(BaseModel):
    audio: str = Field(description="data:audio/mpeg;base64,... (MP3)")
    duration_s: float = Field(description="length of the audio, seconds")


class AudioToAudioModel(_Request):
    """A clip to re-imagine: img2img on its spectrogram with one prompt."""

    audio: DataUrl = Field(description="the clip (WAV, MP3, FLAC or OGG) as a data URL")
    prompt: Prompt
    seed: Seed
    negative_prompt: Prompt | None = None
    denoising: Fraction = 0.75
    guidance: Guidance = 7.0
    num_inference_steps: Steps = 50


# --- Errors, health, seeds ----------------------------------------------------------------------


class ErrorModel(BaseModel):
    """Any error response: `message` is one line for people; `detail` is FastAPI's."""

    message: str
    detail: Any = None


class QueueModel(BaseModel):
    length: int = Field(description="inference requests waiting")
    capacity: int = Field(description="how many may wait before requests answer 429")


class ReplicaModel(BaseModel):
    """One model replica of a Ray deployment (`riffusion serve --ray`)."""

    id: str = Field(description="Ray Serve's id of the replica")
    status: Literal["loading", "ready", "failed"] = Field(
        description="failed also when the replica stopped answering (lost)"
    )
    device: str
    message: str
    queue: QueueModel
    running: int = Field(description="clips the replica is rendering now")
    completed: int = Field(description="clips the replica has finished")

    @classmethod
    def from_state(cls, state: ReplicaState) -> ReplicaModel:
        return cls(
            id=state.replica_id,
            status=state.status,
            device=state.device,
            message=state.message,
            queue=QueueModel(length=state.queue_length, capacity=state.capacity),
            running=state.running,
            completed=state.completed,
        )


class HealthModel(BaseModel):
    """The model's state. status is loading, ready or failed; with replicas (Ray), ready while
    any replica is, and the queue is theirs together."""

    status: Literal["loading", "ready", "failed"]
    model: str
    device: str
    stage: str | None = Field(description="what loading is doing; null when not loading")
    progress: float | None = Field(description="fraction of loading done where known, else null")
    elapsed_s: float = Field(description="seconds loading has taken (so far)")
    message: str
    fix: str | None = Field(description="when failed: what to do about it")
    queue: QueueModel
    replicas: list[ReplicaModel] | None = Field(
        default=None, description="each model replica (`serve --ray`); null for one process"
    )


class SeedModel(BaseModel):
    id: str
    url: str
    width: int = Field(description="pixels; 10 ms of audio per column")
    height: int
    duration_s: float
    bpm: float | None = None
    description: str | None = None


class SeedListModel(BaseModel):
    default: str
    seeds: list[SeedModel]


class MaskModel(BaseModel):
    id: str
    url: str
    description: str | None = None


class MaskListModel(BaseModel):
    masks: list[MaskModel]


class PresetModel(BaseModel):
    name: PresetName
    summary: str = Field(description="what it trades, in one line")
    steps: int = Field(description="its step count when a request gives none")
    max_steps: int = Field(description="the most steps it accepts")
    guided: bool = Field(description="whether guidance and negative prompts take effect")


class PresetListModel(BaseModel):
    default: PresetName = Field(description="the preset of requests that name none")
    presets: list[PresetModel]


# --- Jam WebSocket: client to server ------------------------------------------------------------


class JamSettingsModel(_Request):
    """A change of jam settings: any subset of the fields (an absent field is left as it is)."""

    denoising: Fraction | None = None
    guidance: Guidance | None = None
    num_inference_steps: Steps | None = None
    seed_image_id: ImageId | None = None
    mask_image_id: MaskId = None
    alpha_velocity: AlphaVelocity | None = None
    seed: Seed | None = None
    preset: Preset | None = None
    lora: LoraId | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent. mask_image_id may be sent as null or "" (no mask) and lora
        as null (the model alone); a null elsewhere means the same as leaving the field out."""
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if getattr(self, name) is not None or name in ("mask_image_id", "lora")
        }


class StartMessage(_Request):
    type: Literal["start"]
    prompt: Prompt
    settings: JamSettingsModel = Field(default_factory=JamSettingsModel)
    clips_ahead: ClipsAhead = 3


class PromptMessage(_Request):
    type: Literal["prompt"]
    prompt: Prompt


class SettingsMessage(_Request):
    type: Literal["settings"]
    settings: JamSettingsModel


class PlayedMessage(_Request):
    type: Literal["played"]
    index: Index


class PauseMessage(_Request):
    type: Literal["pause"]


class ResumeMessage(_Request):
    type: Literal["resume"]


ClientMessage = Annotated[
    StartMessage | PromptMessage | SettingsMessage | PlayedMessage | PauseMessage | ResumeMessage,
    Field(discriminator="type"),
]


# --- Jam WebSocket: server to client ------------------------------------------------------------


class ClipMessage(BaseModel):
    """A jam clip. Its audio is the piece of the session's one stitched stream that became final
    with it; positions in that stream are seconds from its first sample (docs/api.md)."""

    type: Literal["clip"] = "clip"
    index: int
    image: str = Field(description="the spectrogram, data:image/jpeg;base64,...")
    audio: str = Field(description="the stream's next piece, data:audio/flac;base64,... (FLAC)")
    duration_s: float = Field(description="length of the audio: its frames / 44100, seconds")
    audio_start_s: float = Field(
        description="where the audio starts in the stream: where the previous clip's ended"
    )
    image_start_s: float = Field(description="where the clip's image starts in the stream")
    image_duration_s: float = Field(description="how long the clip's image lasts as played")
    input: InferenceInputModel
    requested_steps: int | None = Field(
        default=None,
        description="the steps the jam's settings ask for, where the server's max_steps cut them "
        "to input.num_inference_steps; null otherwise",
    )
    state: JamState
    prompt: str = Field(description="where the clip is heading: input.end.prompt")


class StatusMessage(BaseModel):
    type: Literal["status"] = "status"
    model: HealthModel
    prompt: str | None = Field(description="the prompt of the clip generated last")
    queued_prompts: list[str]
    played: int = Field(description="the index the playhead reported last; -1 before any")
    generated: int = Field(description="clips pushed so far")
    ahead: int = Field(description="clips pushed that the playhead has not reached")
    behind: bool = Field(description="the playhead has reached the newest clip pushed")
    paused: bool


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    message: str


class LoraListModel(BaseModel):
    """The LoRAs (trained styles) a request or a jam may choose by id."""

    loras: list[str] = Field(description="ids for the lora field; `serve --lora NAME=PATH`")
