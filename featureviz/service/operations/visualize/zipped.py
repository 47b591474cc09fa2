"""A `filters` request's answer with output: "zip": one PNG per filter, named by its filter.

The PNGs are stored as they are (they are compressed already), each with a fixed time, so that
the same request gives the same bytes."""
import io
import zipfile

CONTENT_TYPE = "application/zip"


def png_name(layer: int, filter: int) -> str:
    return f"layer{layer:02d}_filter{filter:04d}.png"


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()
