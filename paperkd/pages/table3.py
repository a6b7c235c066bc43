"""Table 3: where to distil, MIDDLE (the encoder output) or END (the last conv before the classifier), ResNet-18
student. The paper's text: pixel-wise works best at END, pair-wise at MIDDLE; each row here is compared with the same
loss at the other position (its Table 3 numbers put pair-wise END 0.07 above MIDDLE)."""

from paperkd.pages.table_page import TablePage, student_labels

# each loss at the position the paper's text prefers, against the same loss at the other one
REFERENCES = {"r18-pixel": "r18-pixel-middle", "r18-pair": "r18-pair-end"}
PAGE = TablePage("table3", "Table 3, mIoU (%)", labels=student_labels("table3"), references=REFERENCES,
                 compared="each loss at its preferred position against the other position",
                 versus_name="vs other position")
answer, details, smoke_check, provenance = PAGE.answer, PAGE.details, PAGE.smoke_check, PAGE.provenance
