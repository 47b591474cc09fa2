"""The KServe predictor's batches, as TorchServe makes them: requests that arrive within the delay
of the first go to one run, at most `size`, one batch at a time; a failure reaches its callers."""
import asyncio
import threading

from kserve_predictor.batches import Batches


class Recorder:
    """A batch's run: records each batch and whether two ever ran at once; each item's outcome is
    item * 10, or the item itself where it is an exception."""

    def __init__(self, hold: threading.Event | None = None):
        self.batches, self.running, self.overlapped, self.hold = [], 0, False, hold

    def __call__(self, items):
        self.running += 1
        self.overlapped |= self.running > 1
        if self.hold:
            self.hold.wait(5)
        self.batches.append(list(items))
        self.running -= 1
        return [item if isinstance(item, Exception) else item * 10 for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


def test_requests_within_the_delay_share_a_batch_of_at_most_size():
    recorder = Recorder()
    batches = Batches(recorder, size=4, delay_s=0.2, name="test")

    async def main():
        return await asyncio.gather(*(batches.submit(i) for i in range(6)))
    assert run(main()) == [0, 10, 20, 30, 40, 50]
    assert recorder.batches == [[0, 1, 2, 3], [4, 5]]


def test_a_request_after_the_delay_gets_a_batch_of_its_own():
    recorder = Recorder()
    batches = Batches(recorder, size=4, delay_s=0.05, name="test")

    async def main():
        first = asyncio.ensure_future(batches.submit(1))
        await asyncio.sleep(0.5)
        return await asyncio.gather(first, batches.submit(2))
    assert run(main()) == [10, 20]
    assert recorder.batches == [[1], [2]]


def test_one_batch_at_a_time_and_what_came_meanwhile_is_the_next():
    hold = threading.Event()
    recorder = Recorder(hold)
    batches = Batches(recorder, size=2, delay_s=0.0, name="test")

    async def main():
        first = asyncio.ensure_future(batches.submit(1))
        await asyncio.sleep(0.2)  # the first batch is running, held
        rest = [asyncio.ensure_future(batches.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.2)
        hold.set()
        return await asyncio.gather(first, *rest)
    assert run(main()) == [10, 20, 30, 40]
    assert recorder.batches == [[1], [2, 3], [4]] and not recorder.overlapped


def test_an_outcome_that_is_an_exception_is_raised_to_its_caller_alone():
    batches = Batches(Recorder(), size=4, delay_s=0.1, name="test")

    async def main():
        return await asyncio.gather(batches.submit(1), batches.submit(ValueError("bad")), return_exceptions=True)
    good, bad = run(main())
    assert good == 10 and isinstance(bad, ValueError) and str(bad) == "bad"


def test_a_failed_batch_fails_each_of_its_callers():
    def broken(items):
        raise RuntimeError("no batch")
    batches = Batches(broken, size=4, delay_s=0.1, name="test")

    async def main():
        return await asyncio.gather(batches.submit(1), batches.submit(2), return_exceptions=True)
    assert [str(e) for e in run(main())] == ["no batch", "no batch"]


def test_the_event_loop_runs_while_a_batch_runs():
    hold = threading.Event()
    batches = Batches(Recorder(hold), size=1, delay_s=0.0, name="test")

    async def main():
        pending = asyncio.ensure_future(batches.submit(1))
        ticks = 0
        while ticks < 5:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()  # the batch is still held while the loop ticked
        hold.set()
        return await pending
    assert run(main()) == 10
