"""Markdown output for every benchmark section: tables printed row by row as they are measured
(a long run stopped early still shows what it had), the same lines appended to a file if asked."""


def markdown(header, rows) -> str:
    """The rows under `header` as one Markdown table."""
    lines = [_line(header), "|" + "---|" * len(header)] + [_line(row) for row in rows]
    return "\n".join(lines) + "\n"


def _line(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


class Report:
    """Text and tables to stdout, and to the file `out` (appended) if given."""

    def __init__(self, out: str | None = None):
        self.out = out

    def say(self, text: str = ""):
        print(text, flush=True)
        if self.out:
            with open(self.out, "a") as f:
                f.write(text + "\n")

    def table(self, header, title: str | None = None) -> "Table":
        """A table whose header is printed now and each row by Table.row; `title` above it."""
        if title:
            self.say(f"{title}\n")
        return Table(self, header)

    def rows(self, header, rows, title: str | None = None):
        """A whole table at once, and a blank line after it."""
        table = self.table(header, title)
        for row in rows:
            table.row(*row)
        self.say()


class Table:
    def __init__(self, report: Report, header):
        self.report, self.width = report, len(header)
        report.say(markdown(header, []).rstrip("\n"))

    def row(self, *cells):
        if len(cells) != self.width:
            raise ValueError(f"{len(cells)} cells for {self.width} columns")
        self.report.say(_line(cells))
