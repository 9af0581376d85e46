"""Built-in CPU audio engines: Piper speech with emotion tags, voice matching, Whisper ASR, music.

Each engine module (``tts``, ``clone``, ``asr``, ``music``) exposes ``create(context)`` for the
``hyperlocal.engines`` entry-point group. Nothing heavy is imported here: Piper, Whisper and
WORLD load inside the engine modules, lazily, on the first request.
"""
