"""The paper's own numbers (Tables 1-3), as data keyed by paperkd preset names: the only hard-coded results anywhere.

Values are exactly as printed in the paper: mIoU in % on VOC 2012 val (mean of 3 runs), parameters in millions,
training time per iteration in ms on the authors' GPU. The paper contradicts itself on the teacher, 74.78 in Table 1
and 74.48 in Table 2; each table keeps its own value.
"""

from __future__ import annotations

import pandas as pd

from paperkd.errors import ConfigError

# Row labels as the paper prints them (Table 1 names the model, Tables 2 and 3 the method).
MODEL_LABELS = {
    "teacher": "Teacher DeepLabV3+ ResNet-101",
    **{f"r18-{m}": "Student ResNet-18" for m in ("none", "pixel", "pair", "both")},
    **{f"mnv2-{m}": "Student MobileNet-V2" for m in ("none", "pixel", "pair", "both")},
}
METHOD_LABELS = {
    "teacher": "Teacher",
    "r18-none": "No distillation",
    "r18-gat": "GAT [37]",
    "r18-heo": "Method of [34]",
    "r18-both": "Proposed",
    "r18-pixel-middle": "Pixel-wise (MIDDLE)",
    "r18-pixel": "Pixel-wise (END)",
    "r18-pair": "Pair-wise (MIDDLE)",
    "r18-pair-end": "Pair-wise (END)",
}

# Table 1: mIoU (%) and parameters (M); `pixel` / `pair` are the table's check marks.
TABLE1: dict[str, dict] = {
    "teacher": {"pixel": False, "pair": False, "miou": 74.78, "params": 59.3},
    "r18-none": {"pixel": False, "pair": False, "miou": 66.59, "params": 16.6},
    "r18-pixel": {"pixel": True, "pair": False, "miou": 69.04, "params": 16.6},
    "r18-pair": {"pixel": False, "pair": True, "miou": 68.47, "params": 16.6},
    "r18-both": {"pixel": True, "pair": True, "miou": 69.21, "params": 16.6},
    "mnv2-none": {"pixel": False, "pair": False, "miou": 62.92, "params": 5.8},
    "mnv2-pixel": {"pixel": True, "pair": False, "miou": 64.48, "params": 5.8},
    "mnv2-pair": {"pixel": False, "pair": True, "miou": 63.56, "params": 5.8},
    "mnv2-both": {"pixel": True, "pair": True, "miou": 64.71, "params": 5.8},
}

# Table 2: mIoU mean and std (%) over 3 seeds, training time per iteration (ms).
TABLE2: dict[str, dict] = {
    "teacher": {"miou": 74.48, "std": 0.44, "time_ms": 760.0},
    "r18-none": {"miou": 66.59, "std": 0.29, "time_ms": 250.0},
    "r18-gat": {"miou": 67.11, "std": 0.28, "time_ms": 450.0},
    "r18-heo": {"miou": 68.53, "std": 0.25, "time_ms": 560.0},
    "r18-both": {"miou": 69.21, "std": 0.63, "time_ms": 740.0},
}

# Table 3: mIoU (%) and training time per iteration (ms) with the distilled feature at MIDDLE or END.
TABLE3: dict[str, dict] = {
    "r18-pixel-middle": {"miou": 68.46, "time_ms": 700.0},
    "r18-pixel": {"miou": 69.04, "time_ms": 720.0},
    "r18-pair": {"miou": 68.47, "time_ms": 680.0},
    "r18-pair-end": {"miou": 68.54, "time_ms": 760.0},
}

TABLES = {"table1": TABLE1, "table2": TABLE2, "table3": TABLE3}
# The no-distillation student that Table 2's time ratios are taken against.
REFERENCE_PRESET = "r18-none"


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as a DataFrame indexed by preset, rows in the paper's order, plus a `label` column."""
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r}; choose one of: {', '.join(TABLES)}")
    labels = MODEL_LABELS if name == "table1" else METHOD_LABELS
    table = pd.DataFrame.from_dict(TABLES[name], orient="index")
    table.insert(0, "label", [labels[p] for p in table.index])
    table.index.name = "preset"
    return table


__all__ = ["MODEL_LABELS", "METHOD_LABELS", "REFERENCE_PRESET", "TABLE1", "TABLE2", "TABLE3", "TABLES", "paper_table"]
