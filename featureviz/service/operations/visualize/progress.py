"""visualize's progress events, for its streamed requests: a `scale` event per scale of the images
they wait for (the channel sends each at once; featureviz.service.streams ends the stream)."""
import base64

import torch
import torch.nn.functional as F

from ....pictures import to_png

PREVIEW_SIDE = 64


@torch.no_grad()
def preview(image: torch.Tensor) -> str:
    """An image of a scale, (3, H, W) in [0, 1], as a base64 PNG at most PREVIEW_SIDE px wide."""
    side = min(PREVIEW_SIDE, image.shape[-1])
    small = F.interpolate(image[None].float().clamp(0, 1), size=(side, side), mode="area")[0]
    return base64.b64encode(to_png(small.cpu(), {})).decode()


def scale_events(channel, group: list, listeners: dict, group_index: int, groups_of: dict):
    """render's on_stage for the images of `group`, group `group_index` of the batch: each streamed
    request that waits for some of them gets a `scale` event a scale (its activation, or with an
    objective list its objective's value; with `filters`: those images' filters and activations,
    and which of the request's groups this is, of how many). None when nobody waits."""
    waiting = {}  # id of a streamed request -> (request, positions in group of its images)
    for position, single in enumerate(group):
        for request in listeners.get(single, []):
            waiting.setdefault(id(request), (request, []))[1].append(position)
    if not waiting:
        return None

    def on_stage(stage, side, values, images):
        for request, positions in waiting.values():
            event = {"event": "scale", "scale": stage + 1, "scales": request.schedule.upscaling_steps, "side": side}
            if request.drawing.is_list():
                event["objective_value"] = objective_value(request, values[positions[0]])
            elif request.filters is None:
                event["activation"] = values[positions[0]][0]
            else:
                event["filters"] = [group[p].filter for p in positions]
                event["activations"] = [values[p][0] for p in positions]
                mine = groups_of[id(request)]
                event["group"], event["groups"] = mine.index(group_index) + 1, len(mine)
            if request.preview and request.filters is None:
                event["preview"] = preview(images[positions[0]])
            elif request.preview:
                event["previews"] = [preview(images[p]) for p in positions]
            channel.progress(request, event)
    return on_stage


def objective_value(request, terms: list) -> float:
    """The weighted sum of an objective list's terms' values."""
    return float(sum(weight * value for (weight, _), value in zip(request.objective().terms, terms)))
