"""The book's results pages, one module each: `table1`, `table2`, `table3`, `figure2`, `findings`, `performance`,
`earlier`. A page module holds its rows, the paper's numbers, its table and its figures; its notebook
(notebooks/<page>.py) is a parameters cell and a few calls. Every page opens with its answer for the main committed
campaign (`campaigns.MAIN`), then shows the rows in detail, the book's own smoke check last, and where the numbers
come from in a collapsed section.

Pages only read: run records, saved predictions, benchmark and calibration files. Nothing here imports the trainer
(tests/test_reading_never_trains.py); `paperkd campaign` trains, and `paperkd book` runs it before executing pages.
"""
