"""A network camera for tests: ``ffmpeg -listen`` serving a looping video as MPEG-TS over HTTP, restartable on the
same port, so a test can make a live source die, freeze and come back."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class StreamServer:
    """``ffmpeg -listen 1`` serving a looping video as MPEG-TS over HTTP, restartable on the same port."""

    def __init__(self, ffmpeg: str, video: Path, port: int):
        self.ffmpeg = ffmpeg
        self.video = video
        self.url = f"http://127.0.0.1:{port}/live.ts"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video),
             "-an", "-c:v", "mpeg1video", "-q:v", "4", "-f", "mpegts", "-listen", "1", self.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(5)
