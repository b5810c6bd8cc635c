"""negolens.figures — draws paper figures and reports from saved results (top layer).

Every function reads tables the lower layers saved and writes PNG + PDF in one style
(:mod:`negolens.figures.style`); nothing here recomputes a result.
"""
