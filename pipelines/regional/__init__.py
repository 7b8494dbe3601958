"""Learning from a region: a user's mosaics and landslide inventory become training windows.

- :mod:`pipelines.regional.split`: spatial blocks for train/validation/test (and k-fold), with a
  buffer so that no training window touches held-out ground.
- :mod:`pipelines.regional.labels`: the inventory rasterised on a window's grid, with the pixels
  it says nothing about marked unknown.
- :mod:`pipelines.regional.sampling`: which windows each epoch trains on, seeded.
"""
