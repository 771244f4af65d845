"""Page output: figures as PNG, values glued into prose, long interactive tables, download links."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation chatter, not findings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in a kernel without ipywidgets


#: What a table's HTML holds besides its text: style and script blocks whole, then single tags.
_NOT_TEXT = re.compile(r"(<style\b.*?</style>|<script\b.*?</script>|<[^>]*>)", re.S | re.I)


def breakable(html: str) -> str:
    """A table's HTML whose text may wrap after an underscore (``<wbr>``): a column of names such
    as tf_efficientnet_lite2 otherwise sets its width by the longest name, and a table of a few of
    them is wider than the page. Tags, styles and scripts are left as they are."""
    # split with one group: text at even places, what _NOT_TEXT matched at odd ones
    return "".join(part if i % 2 else part.replace("_", "_<wbr>") for i, part in enumerate(_NOT_TEXT.split(html)))


def _breakable_tables() -> None:
    """Every table a page displays (frames and styled frames) rendered through ``breakable``."""
    from IPython import get_ipython
    from pandas.io.formats.style import Styler

    shell = get_ipython()
    if shell is None:  # imported outside a kernel: nothing displays HTML
        return
    html = shell.display_formatter.formatters["text/html"]
    for kind in (pd.DataFrame, Styler):
        html.for_type(kind, lambda table: breakable(table._repr_html_()))


def show(fig) -> None:
    """Embed a figure as PNG whatever matplotlib backend the kernel runs, then free it. None (a
    figure with nothing to draw, in a partial edition) says so instead."""
    import matplotlib.pyplot as plt

    if fig is None:
        display(Markdown("*No finished runs to plot here in this edition yet.*"))
        return
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue()))


def glue(name, value, fmt=None):
    """Glue a value for the prose, formatted for reading: as Markdown for its own page
    ({glue:md}`name:myst`: what it names in code type, a preset or a command, reads so), and as
    plain text, backticks dropped, for another page ({glue:text}`page.ipynb::name:s`; myst-nb
    pastes only text across pages)."""
    from myst_nb import glue as _glue

    _glue(name, _Prose(str(fmt.format(value) if fmt else value)), display=False)


class _Prose:
    """A glued sentence: its Markdown, and its plain text for the pages that paste only text."""

    def __init__(self, markdown: str):
        self.markdown = markdown

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:  # quoted like a str's repr: myst-nb unquotes text/plain with literal_eval
        return repr(self.markdown.replace("`", ""))


_INTERACTIVE = {"ready": False}


def long_table(frame: pd.DataFrame, caption: str) -> None:
    """A long table as an interactive one (itables, offline: its script is embedded once per page,
    so the site needs no network): sortable, searchable, ten rows at a time, never wider than
    the page. The table id is derived from the caption so a rebuild writes the same bytes."""
    import hashlib

    import itables

    if not _INTERACTIVE["ready"]:
        itables.init_notebook_mode(all_interactive=False, connected=False)
        _INTERACTIVE["ready"] = True
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    table_id = "itables_" + hashlib.sha1(caption.encode()).hexdigest()[:10]
    itables.show(frame, caption=caption, table_id=table_id, pageLength=10, lengthMenu=[10, 25, 100],
                 classes="display compact", scrollX=True, showIndex=False)


def downloads(folder, results, tables: dict | None = None, runs: bool = True, cost: bool = False) -> None:
    """Download links for the tables a page uses: the tidy runs table and cost table from the
    results folder, and this page's own summaries, written as CSV into ``folder`` (the book passes
    downloads/ beside the page; None, as for a template run by hand, writes nothing)."""
    links = []
    res = Path(results) if results else None
    linkable = res is not None and not res.is_absolute()  # the book passes results relative to the page
    for wanted, name in ((runs, "runs.csv"), (cost, "cost.csv")):
        if wanted and linkable and (res / name).exists():
            links.append(f"{{download}}`{name} <{(res / name).as_posix()}>`")
    for name, frame in (tables or {}).items() if folder is not None else ():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, float_format="%.6g")
        links.append(f"{{download}}`{name} <{path.as_posix()}>`")
    if links:
        display(Markdown("**Download the tables behind this page:** " + " · ".join(links)))


_breakable_tables()
