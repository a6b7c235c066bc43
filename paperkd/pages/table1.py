"""Table 1: pixel-wise and pair-wise distillation of the ResNet-18 and MobileNet-V2 students (paper: every distilled
row above its plain student, both losses together best)."""

from paperkd.pages.table_page import TablePage, student_labels

PAGE = TablePage("table1", "Table 1, mIoU (%)", labels=student_labels("table1"))
answer, details, smoke_check, provenance = PAGE.answer, PAGE.details, PAGE.smoke_check, PAGE.provenance
