"""Table 2: the proposed losses against attention transfer (GAT [37]) and Heo et al. [34], ResNet-18 student (paper:
proposed > Heo > GAT > none). What each costs per step is on the performance page (benchmark files)."""

from paperkd.pages.table_page import TablePage, student_labels

PAGE = TablePage("table2", "Table 2, mIoU (%)", labels={**student_labels("table2"), "teacher": "Teacher ResNet-101"})
answer, details, smoke_check, provenance = PAGE.answer, PAGE.details, PAGE.smoke_check, PAGE.provenance
