"""The yardstick for trendbot's start: a bare script that fits scikit-learn's TfidfVectorizer on the
shipped knowledge's texts and answers one question, as the simplest TF-IDF bot would.

    python benchmarks/bare_sklearn.py "k8s"
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml
from sklearn.feature_extraction.text import TfidfVectorizer

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"


def texts(node) -> list[str]:
    """Every string in a YAML document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [t for v in node.values() for t in texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts(v)]
    return []


def entries() -> list[str]:
    """One text per trend and FAQ: all of its fields."""
    out = []
    for path in sorted(KNOWLEDGE.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for kind in ("trends", "faqs"):
            out += [" ".join(texts(entry)) for entry in data.get(kind) or ()]
    return out


def main() -> None:
    docs = entries()
    vectorizer = TfidfVectorizer(sublinear_tf=True)
    matrix = vectorizer.fit_transform(docs)
    scores = (matrix @ vectorizer.transform([" ".join(sys.argv[1:])]).T).toarray().ravel()
    print(docs[int(scores.argmax())][:300])


if __name__ == "__main__":
    main()
