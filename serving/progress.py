"""A streamed visualize's events (dicts, as they come) shown as a progress bar; the final PNG back.

Both clients of scripts/ use it: http_client (NDJSON lines) and grpc_client (StreamPredictions)."""
import base64
import sys

from tqdm import tqdm


class StreamFailed(RuntimeError):
    pass


def follow(events, out=sys.stderr) -> tuple[bytes, dict]:
    """(PNG bytes, the done event without its PNG) once `done` comes; StreamFailed on `error`."""
    bar = None
    try:
        for event in events:
            kind = event.get("event")
            if kind == "scale":
                # `filters` optimized in several groups: each group's scales in turn.
                group, groups = event.get("group", 1), event.get("groups", 1)
                if bar is None:
                    bar = tqdm(total=event["scales"] * groups, unit="scale", file=out, dynamic_ncols=True)
                activation = event.get("activation", max(event.get("activations") or [0.0]))
                bar.set_postfix(side=event["side"], activation=f"{activation:.4g}", refresh=False)
                bar.update((group - 1) * event["scales"] + event["scale"] - bar.n)
            elif kind == "done":
                if bar is not None:
                    bar.update(bar.total - bar.n)
                png = base64.b64decode(event.pop("png"))
                return png, event
            elif kind == "error":
                raise StreamFailed(f"{event.get('code')} {event.get('type')}: {event.get('message')}")
        raise StreamFailed("the stream ended without a done event")
    finally:
        if bar is not None:
            bar.close()
