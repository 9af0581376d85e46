import time, asyncio
import numpy as np
from hyperlocal.engines.audio.transcribers import WhisperTranscriber
from hyperlocal.engines.audio.encode import decode, resample

def test_probe_sync() -> None:
    from pathlib import Path; wav = Path("/tmp/tts_long-break.wav").read_bytes()
    x16 = resample(decode(wav), 16000).samples
    w = WhisperTranscriber()
    for i in range(3):
        t=time.time(); c=time.process_time(); segs = list(w.transcribe(x16, True)); print("sync", round(time.time()-t,2), round(time.process_time()-c,2))

async def test_probe_async() -> None:
    from pathlib import Path; wav = Path("/tmp/tts_long-break.wav").read_bytes()
    x16 = resample(decode(wav), 16000).samples
    w = WhisperTranscriber()
    for i in range(3):
        t=time.time(); c=time.process_time(); segs = list(w.transcribe(x16, True)); print("async-inline", round(time.time()-t,2), round(time.process_time()-c,2))
    for i in range(2):
        t=time.time(); c=time.process_time(); segs = await asyncio.to_thread(lambda: list(w.transcribe(x16, True))); print("async-thread", round(time.time()-t,2), round(time.process_time()-c,2))
