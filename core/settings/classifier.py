"""[classifier]: the emotion model and how faces are batched into it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from emotiond.core.settings.base import DEFAULT_MODEL_NAME, _Section


class ClassifierSettings(_Section):
    model: Annotated[str, Field(min_length=1, description="Bundle folder path or a bundle name in "
                                "models.dir.")] = DEFAULT_MODEL_NAME
    backend: Annotated[Literal["litert", "tf"], Field(description="litert: TFLite exported from the "
                                                      "Keras bundle (fastest on CPU); tf: tf.function "
                                                      "with padded batch sizes.")] = "litert"
    max_batch: Annotated[int, Field(ge=1, le=256, description="Most faces per classifier call.")] = 32
    max_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0, description="Longest a detected face of a file "
                                        "read whole waits for batch-mates (a live camera's faces do not "
                                        "wait: its next frame is a frame period away).")] = 5.0
    threads: Annotated[int, Field(ge=0, le=64, description="Classifier threads per worker; 0 means 1.")] = 0
    align: Annotated[bool, Field(description="Rotate each face crop so the eyes are level before classifying, "
                                 "where the detector gives the face's roll (BlazeFace landmarks, or a Haar face "
                                 "found turned).")] = True
