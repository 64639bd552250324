"""Simulated readers and the evaluation of personalisation against them (`readerfirst evaluate`).

Reader models (`models`) describe an audience; `readers` holds each reader's hidden
preferences and how they respond; `evaluate` runs the production loop against them and
`measures` turns it into figures. The SendGrid emulator plays the same readers
(`pipeline.emulator.readers`).
"""

from __future__ import annotations

from pipeline.simulation.evaluate import Evaluation, run_evaluation
from pipeline.simulation.measures import EditionMeasure, check_goals
from pipeline.simulation.models import InvalidReaderModel, ReaderModel, load_reader_model
from pipeline.simulation.readers import Response, ShownSection, SimulatedAudience, SimulatedReader

__all__ = [
    "EditionMeasure",
    "Evaluation",
    "InvalidReaderModel",
    "ReaderModel",
    "Response",
    "ShownSection",
    "SimulatedAudience",
    "SimulatedReader",
    "check_goals",
    "load_reader_model",
    "run_evaluation",
]
