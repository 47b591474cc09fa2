"""`visualize`: the operation (operation.py: settings, the batch, the cache, PNGs), its request
(request.py: fields and compute limits; drawing.py: lucent's way of drawing; objective_field.py:
objectives as lists of terms; filter_sets.py: `filters`), the images rendered (images.py), their
progress events (progress.py) and zip answers (zipped.py)."""
