#!/usr/bin/env python3
"""The seeded Kvasir-SEG split the results scripts share: the 1000 image files sorted by name, shuffled with
random.Random(SEED); the first 800 are train (of which the first LIMIT are kept), the next 100 validation, the last 100
test. Writes SPLIT/{train,val,test}/{images,masks}/ as symlinks to the original files; does nothing if SPLIT/test
already exists. Usage: kvasir-split.py DATA SPLIT SEED [LIMIT]"""
import os, random, sys

data, split, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
limit = int(sys.argv[4]) if len(sys.argv) > 4 else 800
if os.path.isdir(os.path.join(split, "test", "images")):
    sys.exit(0)
masks = {os.path.splitext(m)[0]: m for m in os.listdir(os.path.join(data, "masks"))}
images = sorted(os.listdir(os.path.join(data, "images")))
if len(images) != 1000:
    sys.exit(f"expected Kvasir-SEG's 1000 images in {data}/images, found {len(images)}")
random.Random(seed).shuffle(images)
parts = {"train": images[:800][:limit], "val": images[800:900], "test": images[900:]}
for part, names in parts.items():
    for img in names:
        stem = os.path.splitext(img)[0]
        for kind, name in (("images", img), ("masks", masks[stem])):
            d = os.path.join(split, part, kind)
            os.makedirs(d, exist_ok=True)
            os.symlink(os.path.realpath(os.path.join(data, kind, name)), os.path.join(d, name))
