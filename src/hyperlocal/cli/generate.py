"""Generation from the shell: ``hyperlocal image|video|tts|clone|transcribe|music|3d|chat``.

Each command is a thin layer over the SDK (``hyperlocal.client``), so it works against any
server that speaks the wire, hyperlocal or hosted; ``_session`` connects it and reports errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hyperlocal.cli._command import Handler, SubParsers
from hyperlocal.cli._session import Session, UsageError, command, common_options, media

__all__ = ["add_commands"]

_VIDEO_MODELS = ("sora-2-i2v", "sora-2-t2v")  # with an image, without
_MESH_MODELS = {
    "views": "hunyuan3d-v2-multiview",  # front, back, left
    "views+right": "tripo3d-multiview-to-3d",
    "image": "hunyuan3d-v2-base",
    "prompt": "meshy6-text-to-3d",
}


# --- the commands -------------------------------------------------------------------------


def _image(s: Session) -> int:
    a = s.args
    options = {
        "model": a.model,
        "aspect_ratio": a.aspect,
        "size": a.size,
        "output_format": a.format,
    }
    result = s.spin("Generating image", lambda: s.client.images.generate(a.prompt, **options))
    return s.done(result.raw, s.save(result.url, a.output), result.credits_used)


def _video(s: Session) -> int:
    a = s.args
    if not a.prompt and not a.image:
        raise UsageError("give a prompt, an --image, or both")
    model, image = a.model or _VIDEO_MODELS[0 if a.image else 1], a.image and media(a.image)
    options = {"prompt": a.prompt, "image": image, "duration": a.duration, "aspect_ratio": a.aspect}
    accepted = s.spin("Submitting", lambda: s.client.videos.generate(model, **options))
    job = s.follow(accepted.job_id, f"Generating video with {model}")
    return s.done(job.raw, s.save(job.output_url, a.output), job.credits_used)


def _audio_format(args: argparse.Namespace) -> str | None:
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    return args.format or (suffix if suffix in ("mp3", "wav", "ogg") else None)


def _tts(s: Session) -> int:
    a, fmt = s.args, _audio_format(s.args)
    return s.produce("Speaking", lambda: s.client.audio.tts(a.text, model=a.model, format=fmt))


def _clone(s: Session) -> int:
    a, fmt, voice = s.args, _audio_format(s.args), media(s.args.voice)
    return s.produce(
        "Cloning the voice", lambda: s.client.audio.clone(a.text, voice, model=a.model, format=fmt)
    )


def _music(s: Session) -> int:
    a, fmt = s.args, _audio_format(s.args)
    return s.produce(
        "Composing",
        lambda: s.client.audio.music(a.prompt, model=a.model, duration=a.duration, format=fmt),
    )


def _transcribe(s: Session) -> int:
    a, audio = s.args, media(s.args.audio)
    options = {"model": a.model, "language": a.language}
    result = s.spin("Transcribing", lambda: s.client.audio.transcribe(audio, **options))
    if not s.quiet:
        sys.stdout.write(result.text.strip() + "\n")
    return s.done(result.raw, None, result.credits_used)


def _mesh_inputs(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    views = {"front": a.front, "back": a.back, "left": a.left, "right": a.right}
    modes = {"views": any(views.values()), "image": bool(a.image), "prompt": bool(a.prompt)}
    given = [mode for mode, on in modes.items() if on]
    if len(given) != 1:
        raise UsageError("give exactly one of: --front/--back/--left [--right], --image, --prompt")
    if given[0] == "image":
        return "image", {"image": media(a.image)}
    if given[0] == "prompt":
        return "prompt", {"prompt": a.prompt}
    if not (a.front and a.back and a.left):
        raise UsageError("views need --front, --back and --left (and optionally --right)")
    inputs = {f"{side}_image_url": media(path) for side, path in views.items() if path}
    return ("views+right" if a.right else "views"), inputs


def _three_d(s: Session) -> int:
    mode, inputs = _mesh_inputs(s.args)
    model = s.args.model or _MESH_MODELS[mode]
    return s.produce(
        f"Building a mesh with {model}", lambda: s.client.three_d.generate(model, **inputs)
    )


def _chat_model(s: Session) -> str:
    if s.args.model:
        return str(s.args.model)
    chat = [m for m in s.client.models.list() if m.category == "chat"]
    chat.sort(key=lambda m: not m.available)
    if not chat:
        raise UsageError("this server lists no chat model: pass --model")
    return chat[0].id


def _reply(s: Session, model: str, messages: list[dict[str, str]]) -> str:
    """Stream one answer to stdout as it arrives; return its text."""
    parts: list[str] = []
    with s.client.chat.create(
        messages, model=model, stream=True, max_tokens=s.args.max_tokens
    ) as stream:
        for chunk in stream:
            parts.append(chunk.content)
            sys.stdout.write(chunk.content)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(parts)


def _chat(s: Session) -> int:
    model = _chat_model(s)
    messages = [{"role": "system", "content": s.args.system}] if s.args.system else []
    if s.args.question and s.quiet:
        messages.append({"role": "user", "content": s.args.question})
        reply = s.client.chat.create(messages, model=model, max_tokens=s.args.max_tokens)
        return s.done(reply.raw, None, reply.credits_used)
    if s.args.question:
        _reply(s, model, [*messages, {"role": "user", "content": s.args.question}])
        return 0
    s.err.print(f"[dim]Chatting with {model}. Ctrl-D (or /exit) ends.[/dim]")
    while (line := _ask()) is not None:
        if line:
            messages.append({"role": "user", "content": line})
            messages.append({"role": "assistant", "content": _reply(s, model, messages)})
    return 0


def _ask() -> str | None:
    try:
        line = input("> ").strip()
    except EOFError:
        return None
    return None if line in ("/exit", "/quit") else line


# --- parsers ------------------------------------------------------------------------------


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--aspect", metavar="W:H", help="aspect ratio, e.g. 16:9")
    p.add_argument("--size", help="e.g. 1024x1024 (per model)")
    p.add_argument("--format", choices=("png", "jpeg"))


def _video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?")
    p.add_argument("--image", metavar="PATH_OR_URL", help="the first frame (image to video)")
    p.add_argument("--duration", type=int, help="seconds")
    p.add_argument("--aspect", metavar="W:H")


def _tts_args(p: argparse.ArgumentParser, first: str = "text") -> None:
    p.add_argument(first)
    p.add_argument("--format", choices=("mp3", "wav", "ogg"), help="default: from -o, else mp3")


def _clone_args(p: argparse.ArgumentParser) -> None:
    _tts_args(p)
    p.add_argument("--voice", required=True, metavar="PATH_OR_URL", help="the reference voice")


def _transcribe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", metavar="PATH_OR_URL")
    p.add_argument("--language", help="e.g. en")


def _music_args(p: argparse.ArgumentParser) -> None:
    _tts_args(p, "prompt")
    p.add_argument("--duration", type=int, help="seconds, 10 to 120")


def _three_d_args(p: argparse.ArgumentParser) -> None:
    for side in ("front", "back", "left", "right"):
        p.add_argument(f"--{side}", metavar="PATH_OR_URL", help=f"the {side} view")
    p.add_argument("--image", metavar="PATH_OR_URL", help="one image")
    p.add_argument("--prompt", help="a description")


def _chat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", help="ask once; without it, an interactive chat")
    p.add_argument("--system", help="a system message")
    p.add_argument("--max-tokens", type=int)


class _Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    action: Callable[[Session], int]
    saves: bool = True  # takes -o
    model: str | None = None  # the default --model; None: the server's, or chosen from inputs


_COMMANDS: dict[str, _Command] = {
    "image": _Command("generate an image", _image_args, _image),
    "video": _Command("generate a video from a prompt, an image, or both", _video_args, _video),
    "tts": _Command("speak text", _tts_args, _tts, model="audio-tts"),
    "clone": _Command("speak text in a reference voice", _clone_args, _clone, model="audio-clone"),
    "transcribe": _Command(
        "transcribe speech to text", _transcribe_args, _transcribe, False, "audio-asr"
    ),
    "music": _Command("compose music", _music_args, _music, model="lyria-3-pro"),
    "3d": _Command("build a GLB mesh from views, one image, or a prompt", _three_d_args, _three_d),
    "chat": _Command("chat with a language model (streams the answer)", _chat_args, _chat, False),
}


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    common = common_options()
    for name, spec in _COMMANDS.items():
        parser = sub.add_parser(name, help=spec.help, description=spec.help, parents=[common])
        if spec.saves:
            parser.add_argument("-o", "--output", metavar="PATH", help="where to save the output")
        # Per command, not in the shared parent: argparse shares a parent's actions, defaults too.
        default = f" (default {spec.model})" if spec.model else ""
        parser.add_argument("--model", default=spec.model, help=f"model id{default}")
        spec.arguments(parser)
    return {name: command(spec.action) for name, spec in _COMMANDS.items()}
