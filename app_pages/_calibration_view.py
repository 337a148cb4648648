"""The Calibration page's charts: the reliability diagram, and each class's over- or under-confidence,
as trained and with temperature scaling."""

import streamlit as st

WHEN = {"before": "as trained", "after": "with temperature scaling"}
COLOUR = {
    "field": "model",
    "type": "nominal",
    "title": None,
    "legend": {"orient": "bottom"},
    "scale": {"domain": list(WHEN.values()), "range": ["#d55e00", "#0072b2"]},
}  # colour-blind safe


def reliability_diagram(result: dict) -> None:
    """The reliability diagram of a card's `calibration`, before and after temperature scaling."""
    rows = [{**b, "model": WHEN[when]} for when in WHEN for b in result[when]["bins"]]
    st.vega_lite_chart(
        {
            "layer": [
                {
                    "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
                    "mark": {"type": "line", "color": "#999", "strokeDash": [4, 4]},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative"},
                        "y": {"field": "y", "type": "quantitative"},
                    },
                },
                *[
                    {
                        "data": {"values": rows},
                        "mark": mark,
                        "encoding": {
                            "x": {
                                "field": "confidence",
                                "type": "quantitative",
                                "title": "Confidence (mean of the bin)",
                                "scale": {"domain": [0, 1]},
                            },
                            "y": {
                                "field": "accuracy",
                                "type": "quantitative",
                                "title": "Accuracy in the bin",
                                "scale": {"domain": [0, 1]},
                            },
                            "color": COLOUR,
                            **(
                                {
                                    "size": {
                                        "field": "count",
                                        "type": "quantitative",
                                        "legend": None,
                                        "scale": {"range": [15, 400]},
                                    }
                                }
                                if mark["type"] == "circle"
                                else {}
                            ),
                            "tooltip": [
                                {"field": "model"},
                                {"field": "confidence", "format": ".1%"},
                                {"field": "accuracy", "format": ".1%"},
                                {"field": "count"},
                            ],
                        },
                    }
                    for mark in ({"type": "line"}, {"type": "circle", "opacity": 0.8})
                ],
            ]
        },
        width="stretch",
    )
    st.caption(
        "Each point is one confidence bin (15 of equal width), its size the number of test images in it. "
        "Below the dashed diagonal the model is over-confident, above it under-confident."
    )


def class_gaps(result: dict, class_names: list[str]) -> None:
    """Each class's mean confidence minus accuracy, before and after temperature scaling."""
    gaps = [{**g, "model": WHEN[when]} for when in WHEN for g in result[when]["classes"]]
    st.vega_lite_chart(
        {
            "data": {"values": gaps},
            "mark": "bar",
            "encoding": {
                "y": {"field": "class", "type": "nominal", "sort": class_names, "title": None},
                "yOffset": {"field": "model"},
                "x": {
                    "field": "gap",
                    "type": "quantitative",
                    "title": "Mean confidence − accuracy (over images predicted as it)",
                    "axis": {"format": "+.0%"},
                },
                "color": COLOUR,
                "tooltip": [
                    {"field": "class"},
                    {"field": "model"},
                    {"field": "gap", "format": "+.1%"},
                    {"field": "predicted", "title": "images predicted as it"},
                ],
            },
        },
        width="stretch",
    )
    st.caption(
        "Right of zero: when the model names this class it is more sure than it is right (over-confident); "
        "left: less sure than it is right."
    )
