"""What made an answer: the model version and the weights, as every answer and PNG names them."""
from dataclasses import dataclass

UNTRAINED = "untrained: seeded random weights (WEIGHTS=random), no learned features"


@dataclass(frozen=True)
class Provenance:
    """What made an answer: the model version and the weights (weights.json of the archive)."""
    version: str
    weights: dict

    @property
    def has_classifier(self) -> bool:
        return self.weights.get("classifier", True)

    def note(self) -> dict:
        w = self.weights
        description = UNTRAINED if not w["trained"] else f"{w.get('description', w['source'])} (sha256 {w['sha256'][:12]})"
        return {"source": w["source"], "trained": w["trained"], "classifier": self.has_classifier,
                "sha256": w["sha256"], "description": description}

    def text(self) -> dict:
        """What every PNG says in its text."""
        return {"model_version": self.version, "weights": self.note()["description"]}

    def headers(self) -> dict:
        return {"X-Model-Version": self.version, "X-Weights": self.note()["description"]}
