"""bana_core: the library behind bana-pipeline (BANA, CVPR 2021, and its ReScience reproduction).

Conventions used across the package (documented once, here):

* Labels: 0 = background, 1..20 = the VOC classes in ``bana_core.classes.VOC_CLASSES`` order,
  255 = void (ignored by every loss and metric).
* Boxes: integer pixel boxes ``(x1, y1, x2, y2)``, 0-based, half-open (``x2``/``y2`` exclusive),
  so a box covers ``image[y1:y2, x1:x2]``. VOC XML (1-based, inclusive) converts as
  ``x1 = xmin - 1, x2 = xmax``; COCO ``[x, y, w, h]`` as ``floor(x), floor(y), ceil(x + w), ceil(y + h)``.
* Images: ``uint8`` H x W x 3 RGB numpy arrays.
"""

__version__ = "0.1.0"
