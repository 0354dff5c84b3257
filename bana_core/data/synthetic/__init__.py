"""The embedded synthetic benchmark: a fair miniature of PASCAL VOC 2012 + SBD + COCO.

Written in exactly the public layouts, so every reader and conversion runs on it unchanged::

    <root>/VOCdevkit/VOC2012/{JPEGImages,Annotations,SegmentationClass,SegmentationObject}/
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval,test}.txt
    <root>/benchmark_RELEASE/dataset/{img,cls,inst}/ + {train,val}.txt
    <root>/coco/train2017/<12 digits>.jpg + coco/annotations/instances_train2017.json
    <root>/synthetic_summary.json

Each class (the 20 VOC ones and a few COCO classes outside VOC, the "unseen" classes of the
VOC-to-COCO experiment) has its own shape family and colour/pattern statistics in one table,
``CLASS_SPECS``, and settings it is usually seen in (``ClassSpec.context``). Objects are drawn
over textured backgrounds (which also fill the part of each box the object leaves free), later
objects occlude earlier ones, and every box is tight around its object's visible mask. The
phenomena weakly supervised segmentation struggles with (class context, camouflage, soft edges
and shadows, holes, thin parts) are seeded draws at the rates of a ``World``
(tests/test_synthetic_world.py). Relations between the formats (asserted by tests/test_synthetic.py):

* VOC ``SegmentationClass`` = the class map with 255 (void) on a 1-pixel background ring
  around the objects, as VOC has thin void borders; ``SegmentationObject`` = instance ids in
  XML order, with the same void ring. The void ring never covers object pixels, so each XML
  box is tight around its instance's pixels in ``SegmentationObject``.
* SBD ``GTcls.Segmentation`` = the same class map without void (SBD has none): it equals VOC
  ``SegmentationClass`` wherever that is not 255, and is 0 (background) under the void ring.
  ``GTinst.Segmentation`` likewise equals ``SegmentationObject`` with void mapped to 0.
* Unlike real VOC, the test split has ground truth (PNG and XML).

Everything is a function of the seed: each image draws from its own numpy Generator seeded by
(seed, image index), so worker count and order cannot change a byte; JPEG quality is fixed and
the .mat header carries no timestamp.

Modules: ``shapes`` (primitives, one shape family per class), ``catalogue`` (the class table and
each class's context), ``textures`` (colours, noise, background families), ``scenes``
(``World``, placing, occluding, patterning and painting objects), ``writers`` (VOC / SBD / COCO
files), ``dataset`` (``synthesize``), ``pretrain`` (the pretraining set). Each module uses the
others only through their public names. The world's method-independent statistics are measured
by ``bana_core.world_calibration``, above this layer (it scores with ``bana_core.evaluation``).
"""

from ...classes import COCO_CATEGORIES
from .catalogue import CLASS_SPECS, UNSEEN_SPECS, VOC_SPECS, ClassSpec
from .dataset import synthesize
from .pretrain import make_pretrain_set, read_pretrain_set, render_pretrain_image, write_pretrain_set
from .scenes import TRAITS, Scene, World, render_scene
from .textures import CONTEXT_FAMILIES, FAMILIES
from .writers import mask_to_polygons

__all__ = ["CLASS_SPECS", "COCO_CATEGORIES", "CONTEXT_FAMILIES", "ClassSpec", "FAMILIES", "Scene", "TRAITS",
           "UNSEEN_SPECS", "VOC_SPECS", "World", "make_pretrain_set", "mask_to_polygons", "read_pretrain_set", "render_pretrain_image", "write_pretrain_set",
           "render_scene", "synthesize"]
