"""From run records to the book's tables and plots, in four modules along one line of reading:

- `paperkd.report.sources`: which records a page shows and what its columns are called;
- `paperkd.report.summary`: numbers per row (mean and spread over seeds, the teacher's margin, times);
- `paperkd.report.origin`: where the numbers come from (the provenance a page shows);
- `paperkd.report.plots`: the figures.

Each results page has its own module in `paperkd.pages`, built from these. Nothing here imports the trainer:
reading never trains (`paperkd campaign` does). The names below are re-exported for `from paperkd import report`.
"""

from paperkd.report.origin import (
                                  PRE_RECIPE_NOTE,
                                  describe_data,
                                  provenance_markdown,
                                  sources_markdown,
)
from paperkd.report.plots import (
                                  plot_miou_bars,
                                  plot_prediction_grid,
                                  plot_seed_scores,
                                  plot_time_breakdown,
                                  plot_training_curves,
)
from paperkd.report.sources import (
                                  PRE_RECIPE_TEXT,
                                  checkpoint_path,
                                  data_label,
                                  device_label,
                                  expected_teacher,
                                  label_sources,
                                  no_campaign_markdown,
                                  read_rows,
                                  recipe_label,
                                  table_runs,
                                  table_sources,
                                  teacher_label,
)
from paperkd.report.summary import (
                                  DIVERGED,
                                  NOT_RUN,
                                  TIME_PART_LABELS,
                                  TIME_PARTS,
                                  compare_with_paper,
                                  epoch_history,
                                  mean_std_text,
                                  summarise,
                                  teacher_flag,
                                  teacher_margin_markdown,
                                  time_breakdown,
                                  time_ratio,
)

__all__ = ["DIVERGED", "NOT_RUN", "PRE_RECIPE_NOTE", "PRE_RECIPE_TEXT", "TIME_PARTS", "TIME_PART_LABELS",
           "checkpoint_path", "compare_with_paper", "data_label", "describe_data", "device_label", "epoch_history",
           "expected_teacher", "label_sources", "mean_std_text", "no_campaign_markdown", "plot_miou_bars",
           "plot_prediction_grid", "plot_seed_scores", "plot_time_breakdown", "plot_training_curves",
           "provenance_markdown", "read_rows", "recipe_label", "sources_markdown", "summarise", "table_runs",
           "table_sources", "teacher_flag", "teacher_label", "teacher_margin_markdown", "time_breakdown", "time_ratio"]
