"""negolens.figures — draws paper figures and reports from saved results (top layer)."""
