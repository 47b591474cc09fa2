"""`visualize`: the request (request.py), a batch of them end to end (run.py), their progress
events (stream.py), lucent's way of drawing (drawing.py, drawn.py), `filters` (filter_sets.py) and
zip answers (zipped.py)."""
