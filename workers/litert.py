"""The one way a .tflite model runs here: LiteRT interpreters, one per batch size, resized and allocated once.

The classifier (padded batch buckets), the detectors and the training tools' export checks all invoke
models through ``LiteRTModel``, never ``Model.predict()`` and never a second interpreter loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class LiteRTModel:
    def __init__(self, model: bytes | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._content = model.read_bytes() if isinstance(model, Path) else model
        self._threads = max(1, threads)
        self._interpreter_class = Interpreter
        probe = Interpreter(model_content=self._content, num_threads=self._threads)
        self.input_shape = tuple(int(v) for v in probe.get_input_details()[0]["shape"])
        self.output_shape = tuple(int(v) for v in probe.get_output_details()[0]["shape"])
        self.input_dtype = probe.get_input_details()[0]["dtype"]
        self._by_batch: dict[int, tuple[object, int, list[int]]] = {}

    def _interpreter(self, batch: int) -> tuple[object, int, list[int]]:
        cached = self._by_batch.get(batch)
        if cached is None:
            interpreter = self._interpreter_class(model_content=self._content, num_threads=self._threads)
            input_index = interpreter.get_input_details()[0]["index"]
            if batch != self.input_shape[0]:
                interpreter.resize_tensor_input(input_index, [batch, *self.input_shape[1:]])
            interpreter.allocate_tensors()
            outputs = [detail["index"] for detail in interpreter.get_output_details()]
            cached = self._by_batch[batch] = (interpreter, input_index, outputs)
        return cached

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of the model for one batch (first axis = batch), in the model's output order."""
        interpreter, input_index, outputs = self._interpreter(len(batch))
        interpreter.set_tensor(input_index, batch.astype(self.input_dtype, copy=False))  # type: ignore[attr-defined]
        interpreter.invoke()  # type: ignore[attr-defined]
        return [np.array(interpreter.get_tensor(index)) for index in outputs]  # type: ignore[attr-defined]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The first output for one batch."""
        return self.run(batch)[0]
