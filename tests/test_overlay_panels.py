"""Score panels on a crowded frame: every face gets its panel, beside its box where there is room, and no panel
covers another's rows."""

from __future__ import annotations

import itertools

import numpy as np

from emotiond.clients.overlay import (
    BAR_LABEL_WIDTH,
    BAR_ROW,
    BAR_WIDTH,
    EMOTION_COLORS,
    draw_faces,
    panel_size,
    place_panels,
)
from emotiond.core.protocol import Face

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def crowd(count: int = 10) -> list[Face]:
    """A row of faces close together, as a crowded frame gives: naive panels beside each box would pile up."""
    faces = []
    for i in range(count):
        scores = {label: 0.04 for label in LABELS}
        scores[LABELS[i % len(LABELS)]] = 0.76
        faces.append(Face(box=(30 + 52 * i, 190, 46, 46), emotion=LABELS[i % len(LABELS)], confidence=0.76,
                          scores=scores))
    return faces


def covers(a, b) -> bool:
    return a[0] <= b[0] + b[2] and b[0] <= a[0] + a[2] and a[1] <= b[1] + b[3] and b[1] <= a[1] + a[3]


def test_panels_on_a_crowded_frame_never_cover_one_another():
    faces = crowd()
    panels = place_panels([face.box for face in faces], [panel_size(face) for face in faces], (640, 480))
    assert all(panel is not None for panel in panels), panels
    for a, b in itertools.combinations(panels, 2):
        assert not covers(a, b), (a, b)
    # A lone face keeps its panel right beside its box, at its top, as before.
    alone = place_panels([(100, 100, 80, 80)], [panel_size(faces[0])], (640, 480))
    assert alone == [(184, 100, *panel_size(faces[0]))]


def test_every_row_of_every_panel_shows_its_bar():
    faces = crowd()
    image = np.full((480, 640, 3), 255, np.uint8)
    draw_faces(image, faces, (640, 480))
    panels = place_panels([face.box for face in faces], [panel_size(face) for face in faces], (640, 480))
    shown = total = 0
    for face, (left, top, _w, _h) in zip(faces, panels, strict=True):
        for row, label in enumerate(LABELS):
            total += 1
            bar = round(face.scores[label] * BAR_WIDTH)
            y = top + 2 + row * BAR_ROW + BAR_ROW // 2
            ends = (left + BAR_LABEL_WIDTH + 1, left + BAR_LABEL_WIDTH + bar - 1)  # both ends of the bar
            shown += all(tuple(int(v) for v in image[y, x]) == EMOTION_COLORS[label] for x in ends)
    # Panels piled up beside their boxes hid 9 of these 70 bars.
    assert shown == total, f"{shown} of {total} rows visible"


def test_a_panel_keeps_off_the_boxes_where_the_frame_has_room():
    # The demo's layout: a face near the right edge, whose panel does not fit to its right, and a face to the left
    # whose panel takes the place to the left of the first at its top. Pushed into the frame, the panel covered
    # its own box's right side.
    boxes = [(113, 228, 132, 132), (434, 164, 131, 131)]
    size = panel_size(crowd(1)[0])
    panels = place_panels(boxes, [size, size], (640, 480))
    assert all(panel is not None for panel in panels), panels
    for panel, box in itertools.product(panels, boxes):
        assert not covers(panel, box), (panel, box)
    assert not covers(*panels)
