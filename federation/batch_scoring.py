"""Scoring a feature file with a model directory: one default probability per row, in order.

`yinqi score` is this function and a print. The input is checked like training data (numbers
finite and plausible, the model's columns present, file/row/column named on error); values
beyond the range the federation agreed on are clipped to it, as in training, and reported.
The output is written whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from federation import files
from federation.features import ID_COLUMNS


@dataclass
class BatchScores:
    """What `score_file` wrote."""

    rows: int
    model_version: str
    out: Path
    clipped: dict[str, tuple[int, int]] = field(default_factory=dict)  # column -> (values, first row)

    def warnings(self) -> list[str]:
        return [
            f"column '{column}': {count} value(s) beyond the range the model was trained on (first at row "
            f"{row}) were clipped to it"
            for column, (count, row) in sorted(self.clipped.items())
        ]


def score_file(model_dir: str | Path, data: str | Path, out: str | Path) -> BatchScores:
    """Write `out` (CSV): the input's id columns and `default_probability`, in input order."""
    from federation.model import load_model
    from federation.preprocess import features_of
    from federation.schema import read_table

    scoring = load_model(model_dir)
    scoring.require_consistent()
    label = str(scoring.meta.get("label", "default"))
    unit = str(scoring.meta.get("unit_column", "merchant_id"))  # the privacy unit's id is never a feature
    id_columns = ID_COLUMNS if unit in ID_COLUMNS or unit == "row" else (*ID_COLUMNS, unit)
    raw = read_table(data)
    frame, _ = features_of(raw, str(data), id_columns=id_columns, drop=(label,))
    clipped = scoring.encoder.outside(frame)
    probabilities = scoring.predict_proba(frame, file=str(data))
    ids = [c for c in id_columns if c in raw.columns]
    result = raw[ids].copy() if ids else pd.DataFrame(index=raw.index)
    result["default_probability"] = probabilities
    out = Path(out)
    files.write_with(out, lambda path: result.to_csv(path, index=False))
    return BatchScores(rows=len(result), model_version=scoring.version_hash, out=out, clipped=clipped)
