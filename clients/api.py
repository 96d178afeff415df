"""The in-process Python API: emotions in images and videos with one call, and no daemon.

    import cv2
    from emotiond import Analyzer

    analyzer = Analyzer()                       # loads the default model once
    for face in analyzer.analyze(cv2.imread("photo.jpg")):
        print(face.box, face.emotion, round(face.confidence, 2))

Every call goes through the daemon's own pipeline (``emotiond.workers.pipeline``), so an image or a video
gives here exactly the boxes, track ids and emotions a worker would publish for it. ``Face`` is the protocol's
own face (``emotiond.core.protocol.Face``): box, emotion, confidence, scores, and landmarks, track_id,
smoothed_emotion and smoothed_confidence where the detector and tracker give them.

Pixels it hands back (``result_image``, ``video_frames``) are the pipeline's own image of each frame, with faces
hidden as ``[privacy] faces`` says: draw on or save those, not the frames you passed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.core import protocol
from emotiond.core.errors import UsageError
from emotiond.core.protocol import Face
from emotiond.core.settings import Settings, load_settings
from emotiond.workers.pipeline import Pipeline

__all__ = ["Analyzer", "Face"]

IMAGE_CAMERA = "image"
VIDEO_BATCH_FRAMES = 8  # frames detected before one classifier call: same answers, fewer calls


class Analyzer:
    """A loaded pipeline. ``settings`` default to the usual sources: ``EMOTIOND_*`` variables, then
    ``overrides`` given as dotted keys (``{"classifier.model": "my-bundle", "tracking.enabled": False}``)."""

    def __init__(self, settings: Settings | None = None, overrides: dict[str, Any] | None = None):
        self.settings = settings or load_settings(None, _nest(overrides or {}))
        self.pipeline = Pipeline(self.settings)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.pipeline.labels

    def analyze(self, image: np.ndarray) -> list[Face]:
        """The faces of one BGR (or grey) image, as ``cv2.imread`` returns it."""
        return self.analyze_many([image])[0]

    def analyze_many(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each image; every face of every image is classified in one batch."""
        for image in images:
            _check_image(image)
        cameras = [f"{IMAGE_CAMERA}-{index}" for index in range(len(images))]  # unrelated: no shared tracks
        for camera in cameras:
            self.pipeline.reset(camera)
        detections = [self.pipeline.detect(camera, 0, image) for camera, image in zip(cameras, images, strict=True)]
        faces = self.pipeline.finish(detections)
        for camera in cameras:
            self.pipeline.reset(camera)
        return [list(frame) for frame in faces]

    def result(self, image: np.ndarray, camera: str = IMAGE_CAMERA, seq: int = 0,
               extra: dict[str, Any] | None = None) -> protocol.Result:
        """One image's result in the event schema (what ``emotiond events`` prints for a frame)."""
        _check_image(image)
        return self.result_image(image, camera, seq, extra)[1]

    def result_image(self, image: np.ndarray, camera: str = IMAGE_CAMERA, seq: int = 0,
                     extra: dict[str, Any] | None = None) -> tuple[np.ndarray, protocol.Result]:
        """One image as it may be shown or saved (faces hidden per ``[privacy] faces``) and its result."""
        _check_image(image)
        self.pipeline.reset(camera)
        return self.pipeline.process_images(camera, [(seq, image)], worker="api", extra=[extra or {}])[0]

    def analyze_video(self, path: str | Path, camera: str | None = None) -> Iterator[protocol.Result]:
        """Per-frame results of a video file, in frame order, tracked as the daemon tracks a file."""
        for _pixels, result in self.video_frames(path, camera):
            yield result

    def video_frames(self, path: str | Path, camera: str | None = None
                     ) -> Iterator[tuple[np.ndarray, protocol.Result]]:
        """Each decoded frame of a video, as it may be shown or saved (faces hidden per ``[privacy] faces``), with
        its result (for callers that draw or save the frames)."""
        import cv2

        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise UsageError(f"{path}: not a readable image or video (corrupt or unsupported format)")
        name = camera or protocol.camera_name_from(Path(path).stem)
        self.pipeline.reset(name)
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        try:
            index = 0
            while True:
                frames = []
                while len(frames) < VIDEO_BATCH_FRAMES:
                    ok, pixels = capture.read()
                    if not ok:
                        break
                    frames.append((index + len(frames), pixels))
                if not frames:
                    return
                extra = [{"source": str(path), "t": round(seq / fps, 4)} for seq, _ in frames]
                yield from self.pipeline.process_images(name, frames, worker="analyze", extra=extra)
                index += len(frames)
        finally:
            capture.release()


def _check_image(image: Any) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) \
            or (image.ndim == 3 and image.shape[2] not in (1, 3)) or min(image.shape[:2]) < 1:
        shape = getattr(image, "shape", None)
        raise UsageError(f"expected a uint8 image of shape HxW or HxWx3 (BGR), got {type(image).__name__} {shape}")


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    from emotiond.core.settings import nest_dotted

    return nest_dotted(overrides)
