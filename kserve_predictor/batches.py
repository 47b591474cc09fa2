"""Batches as TorchServe makes them (handler/model-config.yaml's batchSize and maxBatchDelay):
requests to one model that arrive within the delay of the first go to one call, at most `size`,
one batch at a time, in a thread of the model's own, so that the event loop keeps answering."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable


class Batches:
    def __init__(self, run: Callable[[list], list], size: int, delay_s: float, name: str):
        """`run`: a batch of items -> an outcome each (a result, or the exception to raise)."""
        self.run, self.size, self.delay_s = run, size, delay_s
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"batches-{name}")
        self.queue = None
        self.worker = None

    async def submit(self, item):
        """The item's outcome, once its batch has run."""
        loop = asyncio.get_running_loop()
        if self.worker is None:
            self.queue = asyncio.Queue()
            self.worker = loop.create_task(self._work())
        outcome = loop.create_future()
        self.queue.put_nowait((item, outcome, loop.time()))
        found = await outcome
        if isinstance(found, Exception):
            raise found
        return found

    async def _work(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = batch[0][2] + self.delay_s
            while len(batch) < self.size:
                try:
                    batch.append(self.queue.get_nowait() if not self.queue.empty() else
                                 await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
            batch = [entry for entry in batch if not entry[1].done()]  # a caller gone before its batch
            if not batch:
                continue
            try:
                outcomes = await loop.run_in_executor(self.thread, self.run, [item for item, _, _ in batch])
            except Exception as error:  # the whole batch failed: each caller gets the error
                outcomes = [error] * len(batch)
            for (_, outcome, _), found in zip(batch, outcomes):
                if not outcome.done():
                    outcome.set_result(found)
