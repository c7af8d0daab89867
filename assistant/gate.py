"""The answer-or-refuse gate: a logistic combination of signals the model cannot talk its way around.

Signals (all free by-products of answering):
- ``p_not_found``: probability that the reply starts with NOT_FOUND under a strict prompt;
- ``min_logprob``: the lowest token log-probability of the written answer (a guess has an unsure token);
- ``top_dense``: cosine similarity of the best passage;
- ``found_nf`` (optional): P(NOT_FOUND) against P(FOUND) when the model is asked whether any passage states
  what the question asks. It costs one more short read (about 1 s), so it is asked only when the fitted gate
  weighs it; measured on the development split it adds about two correct answers in a hundred
  (docs/PERFORMANCE-HISTORY.md).
Weights and the threshold are fitted on the development split of the gold set only
(``python -m evals.tune_gate``) and stored in ``gate.json`` beside this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

FEATURES = ("p_not_found", "min_logprob", "top_dense", "found_nf")
GATE_FILE = Path(__file__).with_name("gate.json")


@dataclass
class Gate:
    weights: dict[str, float] = field(default_factory=lambda: {"p_not_found": -4.0, "min_logprob": 0.35,
                                                                "top_dense": 4.0})
    bias: float = -0.8
    threshold: float = 0.5
    trained_on: str = "untuned defaults"

    def score(self, signals: dict[str, float]) -> float:
        z = self.bias + sum(w * float(signals.get(name, 0.0)) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def uses(self, name: str) -> bool:
        """Does this gate read the signal? (A signal it does not read is not worth asking the model for.)"""
        return name in self.weights

    def answers(self, signals: dict[str, float]) -> bool:
        return self.score(signals) >= self.threshold

    @classmethod
    def load(cls, path: Path = GATE_FILE) -> "Gate":
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(weights=data["weights"], bias=data["bias"], threshold=data["threshold"],
                   trained_on=data.get("trained_on", str(path)))

    def save(self, path: Path = GATE_FILE) -> None:
        path.write_text(json.dumps({"weights": self.weights, "bias": self.bias, "threshold": self.threshold,
                                    "trained_on": self.trained_on}, indent=2) + "\n")
