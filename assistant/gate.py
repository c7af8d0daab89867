"""The answer-or-refuse gate: a logistic model over signals the model cannot talk its way around.

Signals (all free by-products of answering):
- ``p_not_found``: probability that the reply starts with NOT_FOUND under the strict prompt (``prompts.STRICT``);
- ``min_logprob``: the lowest token log-probability of the written answer (a guess has an unsure token);
- ``top_dense``: cosine similarity of the best passage.
The weights and threshold are data, fitted on the development split of the gold set only
(``python scripts/tune_gate.py``) and stored with their provenance in ``gate.json`` beside this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

Signal = Literal["p_not_found", "min_logprob", "top_dense"]
FEATURES: tuple[Signal, ...] = get_args(Signal)
GATE_FILE = Path(__file__).with_name("gate.json")
# what a fitted gate records about how it was fitted (gate.json's "provenance")
PROVENANCE_KEYS = ("model", "embedder", "prompts", "dataset", "split", "questions", "passages", "date")


@dataclass
class Gate:
    weights: dict[str, float] = field(default_factory=lambda: {"p_not_found": -4.0, "min_logprob": 0.35,
                                                                "top_dense": 4.0})
    bias: float = -0.8
    threshold: float = 0.5
    # how the numbers were obtained (model, prompts fingerprint, dataset and split, date); empty: untuned defaults
    provenance: dict[str, str | int | float] = field(default_factory=dict)

    def score(self, signals: dict[str, float]) -> float:
        z = self.bias + sum(w * float(signals.get(name, 0.0)) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def answers(self, signals: dict[str, float]) -> bool:
        return self.score(signals) >= self.threshold

    @classmethod
    def load(cls, path: Path = GATE_FILE) -> "Gate":
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        unknown = sorted(set(data["weights"]) - set(FEATURES))
        if unknown:
            raise ValueError(f"{path}: field 'weights' names unknown signal(s) {', '.join(unknown)}; "
                             f"known: {', '.join(FEATURES)}")
        return cls(weights=data["weights"], bias=data["bias"], threshold=data["threshold"],
                   provenance=dict(data.get("provenance", {})))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"weights": self.weights, "bias": self.bias, "threshold": self.threshold,
                                    "provenance": self.provenance}, indent=2, ensure_ascii=False) + "\n")
