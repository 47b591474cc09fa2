"""The service's retry policy: one request's failure never fails another's."""
import logging
from typing import Callable

import torch

from .refusals import BadRequest, InternalError

logger = logging.getLogger(__name__)


def each_alone_on_failure(run: Callable[[list], list], items: list, memory_hint: str) -> list:
    """run(items) -> one outcome per item. When it fails for several items, each is run alone, so
    that only an item that fails alone is refused: 507 (naming `size`) when it ran out of memory,
    500 otherwise."""
    try:
        return run(items)
    except Exception as error:
        if len(items) > 1:
            logger.warning("%d items failed together (%s); running them one by one", len(items),
                           type(error).__name__)
            return [outcome for item in items for outcome in each_alone_on_failure(run, [item], memory_hint)]
        if isinstance(error, torch.OutOfMemoryError):
            logger.exception("a request ran out of memory")
            return [BadRequest("size", f"the request does not fit in this worker's memory; {memory_hint}", 507)]
        logger.exception("a request failed")
        return [InternalError(f"the request failed in the worker ({type(error).__name__}); the others in "
                              "its batch are not affected: see the worker's log")]
