"""Datasets: readers of the public VOC / SBD / COCO layouts, the synthetic benchmark, transforms."""
