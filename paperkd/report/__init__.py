"""From run records to the book's tables and plots, in four modules along one line of reading:

- `paperkd.report.sources`: which records a page shows and what its columns are called;
- `paperkd.report.summary`: numbers per row (mean and spread over seeds, the teacher's margin, times);
- `paperkd.report.origin`: where the numbers come from (the provenance a page shows);
- `paperkd.report.plots`: the figures.

Each results page has its own module in `paperkd.pages`, built from these. Nothing here imports the trainer:
reading never trains (`paperkd campaign` does). The names below are re-exported for `from paperkd import report`.
"""

from paperkd.report.origin import PRE_RECIPE_NOTE, describe_data, sources_markdown
from paperkd.report.plots import plot_prediction_grid, plot_seed_scores, plot_training_curves
from paperkd.report.sources import (PRE_RECIPE_TEXT, data_label, device_label, expected_teacher, read_rows,
                                    recipe_label, teacher_label)
from paperkd.report.summary import (DIVERGED, NOT_RUN, TIME_PART_LABELS, TIME_PARTS, epoch_history, mean_std_text,
                                    summarise, teacher_flag, teacher_margin_markdown)

__all__ = ["DIVERGED", "NOT_RUN", "PRE_RECIPE_NOTE", "PRE_RECIPE_TEXT", "TIME_PARTS", "TIME_PART_LABELS",
           "data_label", "describe_data", "device_label", "epoch_history", "expected_teacher", "mean_std_text",
           "plot_prediction_grid", "plot_seed_scores", "plot_training_curves", "read_rows", "recipe_label",
           "sources_markdown", "summarise", "teacher_flag", "teacher_label", "teacher_margin_markdown"]
