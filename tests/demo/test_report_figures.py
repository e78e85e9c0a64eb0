"""The report's pieces, checked without running the demo: the training curve plots the series its labels name, on
whole-epoch ticks; step times print one number per step and never a fast step as 0.0 s; the gallery's legend
names every box colour drawn; box labels stay inside the picture, apart, and readable at the size shown; the
attention heatmap tints only where the map has weight."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rsvg.demo.gallery import BOX_KINDS, SHOWN_WIDTH, gallery_boxes, gallery_picture
from rsvg.demo.report import (
    TOTAL_LOSS_LABEL,
    format_seconds,
    gallery_legend,
    loss_terms,
    step_time,
    training_curve_figure,
    training_sentence,
)
from rsvg.results import GroundingResult
from rsvg.viz import FIRST_LOOK, GREEN, RED, overlay, place_labels


def history_rows(epochs: int) -> list[dict]:
    """A training history as :class:`rsvg.engine.trainer.Trainer` writes ``history.json``: per epoch the
    weighted sum ``loss`` and one unweighted mean per term, the rate, the learning rate, validation, the time."""
    rows = []
    for e in range(1, epochs + 1):
        rows.append(
            {
                "epoch": e,
                "loss": 10.79 - 4.2 * (e - 1),
                "l1": 0.15 - 0.04 * (e - 1),
                "giou": 0.8 - 0.11 * (e - 1),
                "cell": 3.2 - 1.1 * (e - 1),
                "samples_per_s": 3.1,
                "lr": 1e-4,
                "val": {"Pr@0.5": 20.0 + 15 * (e - 1), "meanIoU": 30.0},
                "seconds": 790.0,
            }
        )
    return rows


def test_the_curve_plots_every_loss_series_under_its_history_name():
    import matplotlib.pyplot as plt

    history = history_rows(2)
    assert loss_terms(history) == ["loss", "l1", "giou", "cell"]  # the history's keys, the sum first
    fig = training_curve_figure(history)
    try:
        loss_ax = fig.axes[0]
        lines = {line.get_label(): line for line in loss_ax.get_lines()}
        assert set(lines) == {TOTAL_LOSS_LABEL, "l1", "giou", "cell"}
        assert TOTAL_LOSS_LABEL.startswith("loss") and "sum of all terms" in TOTAL_LOSS_LABEL
        for name in ("l1", "giou", "cell"):  # each term's line holds that term's numbers
            assert list(lines[name].get_ydata()) == [h[name] for h in history]
        assert list(lines[TOTAL_LOSS_LABEL].get_ydata()) == [h["loss"] for h in history]
        # the axis promises no particular terms (it once said "smooth-L1 + GIoU" over the sum of every term)
        assert "GIoU" not in loss_ax.get_ylabel() and "per term" in loss_ax.get_ylabel()
        legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
        assert legend == [TOTAL_LOSS_LABEL, "l1", "giou", "cell", "validation Pr@0.5"]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_epochs_are_ticked_as_whole_numbers(epochs):
    import matplotlib.pyplot as plt

    fig = training_curve_figure(history_rows(epochs))
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown
        assert {1, epochs} <= set(shown) or epochs == 7  # the first and last epochs are ticked (few epochs)
    finally:
        plt.close(fig)


def test_step_times_print_the_measured_time_and_a_fast_step_is_not_zero():
    assert format_seconds(0.02) == "0.02 s"
    assert format_seconds(0.049) == "0.05 s"
    assert format_seconds(0.001) == format_seconds(0.0) == "< 0.01 s"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(2906.6) == "2,906.6 s (48.4 min)"
    for seconds in (0.0, 0.004, 0.01, 0.03, 0.049):
        assert format_seconds(seconds) != "0.0 s"
    ran = {"seconds": 2906.6, "reused": False, "command": "rsvg train"}
    assert step_time(ran) == "2,906.6 s (48.4 min)"
    assert training_sentence(ran, 2) == "Training took 2,906.6 s (48.4 min) (2 epochs)."
    # reused: both say the time the step took when it ran
    reused = {"seconds": 0.0, "reused": True, "command": "rsvg train", "ran_seconds": 2906.6}
    assert step_time(reused) == "reused (took 2,906.6 s (48.4 min))"
    assert format_seconds(2906.6) in training_sentence(reused, 2) and "reused" in training_sentence(reused, 2)
    old_stamp = {"seconds": 0.0, "reused": True, "command": "rsvg train"}
    assert step_time(old_stamp) == "reused" and "took" not in training_sentence(old_stamp, 1)


def _moved_result(box, first_look) -> GroundingResult:
    return GroundingResult(
        box=box,
        width=800,
        height=800,
        first_look_box=first_look,
        steps={"refined": True},
        step_titles={"refined": "box refinement"},
    )


def test_the_legend_names_every_box_colour_the_gallery_draws():
    result = _moved_result((600.0, 500.0, 790.0, 700.0), (560.0, 480.0, 760.0, 690.0))
    boxes = gallery_boxes((602.0, 503.0, 792.0, 702.0), result)
    drawn = [colour for _, colour, _ in boxes]
    kinds = {k.colour: k for k in BOX_KINDS}
    # the answer first; the boxes drawn over it let it show: the first look thin, the truth in dashes
    assert drawn == [RED, FIRST_LOOK, GREEN]
    assert [kinds[c].line for c in drawn] == ["solid", "thin", "dashed"]
    legend = gallery_legend()
    for colour in drawn:
        kind = kinds[colour]
        assert f"rgb{colour}" in legend and kind.colour_name in legend and f"<b>{kind.label}</b>" in legend
        assert kind.line == "solid" or f"{kind.colour_name}, {kind.line}" in legend
    assert "yellow" in legend and "first look" in legend  # the box the reader could not find explained
    assert [label for _, _, label in boxes] == [kinds[c].label for c in drawn]  # the pictures' labels, as listed


def test_labels_stay_inside_the_image_and_apart():
    width = height = 800
    # a box touching the right edge, and one in the top-right corner: labels wider than the room beside them
    boxes = [(760.0, 300.0, 799.0, 340.0), (770.0, 0.0, 800.0, 20.0), (765.0, 302.0, 799.0, 342.0)]
    sizes = [(180, 32), (150, 32), (120, 32)]
    places = place_labels(boxes, sizes, width, height)
    for (x1, y1, x2, y2), (w, h) in zip(places, sizes, strict=True):
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert (x2 - x1, y2 - y1) == (w, h)
    for i, a in enumerate(places):
        for b in places[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)
    # a label larger than the image starts at its top-left corner
    assert place_labels([(10.0, 10.0, 20.0, 20.0)], [(900, 30)], width, height)[0][:2] == (0, 0)


def test_gallery_labels_read_at_the_shown_size():
    """Labels are at least 12 px tall where the report shows the picture, however large the scene."""
    for side in (256, 800, 1600):
        rgb = np.zeros((side, side, 3), np.uint8)
        s = side / 800
        result = GroundingResult(box=(300 * s, 300 * s, 500 * s, 500 * s), width=side, height=side)
        picture = gallery_picture(rgb, (700 * s, 300 * s, side - 1, 400 * s), result)
        mask = np.all(picture == GREEN, axis=-1).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        label = max(stats[1:], key=lambda st: st[cv2.CC_STAT_AREA])  # the filled label, not a dash of the box
        x, w, h = label[cv2.CC_STAT_LEFT], label[cv2.CC_STAT_WIDTH], label[cv2.CC_STAT_HEIGHT]
        assert h * SHOWN_WIDTH / side >= 12, (side, h)
        assert x + w <= side  # the truth box touches the right edge; its label stays inside


def test_coinciding_boxes_all_stay_visible():
    """A success whose answer is the truth, and a first look the later steps barely moved: every colour shows."""
    box = (200.0, 200.0, 500.0, 420.0)
    picture = gallery_picture(np.zeros((800, 800, 3), np.uint8), box, _moved_result(box, box))
    edge = picture[250:400, 195:206]  # a stretch of the three boxes' shared left edge, below the labels
    for colour in (GREEN, RED, FIRST_LOOK):
        assert np.all(edge == colour, axis=-1).sum() > 50, colour


def test_heatmap_tints_only_where_the_model_looks():
    rgb = np.full((64, 64, 3), 120, np.uint8)
    attention = np.zeros((64, 64), np.float32)
    attention[20:30, 40:50] = 1.0
    attention[0:10, 0:10] = 0.25
    picture = overlay(rgb, attention=attention)
    assert np.array_equal(picture[35:, :], rgb[35:, :])  # zero weight: the photo as it is
    peak = np.abs(picture[25, 45].astype(int) - 120).max()
    faint = np.abs(picture[5, 5].astype(int) - 120).max()
    assert peak > 3 * faint > 0  # the tint grows with the map's value
