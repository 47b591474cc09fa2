"""The service: what a model server's worker runs, no model server imported.

    service      Service: a batch of requests end to end; one request's failure fails no other
    operations/  the served operations, one class each (base.py: the template they share)
    settings     the worker's settings: the service's own, each operation's own, FEATUREVIZ_* first
    fields, uploads, checks     a request's fields, its uploaded image, checks against the network
    refusals, retry             4xx/507/500 answers naming the field; each request alone on failure
    answers, instances, streams the answer a request gets: plain, KServe v1 predictions, NDJSON
    channel, metrics            what an operation reports while it runs: metrics, progress events
    cache, provenance           the result cache; the model version and weights every answer names
    allocator                   the CPU worker's memory: freed memory reused, given back after a batch
"""
