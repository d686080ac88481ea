"""Helpers of the browser test (``tests/test_browser.py``): servers, the tiny notebook, page checks.

The browser test drives the recommendation explorer in a real JupyterLab page and in Voilà,
in Debian's headless Chromium through Playwright. This module holds what it needs:

- :func:`find_chromium`, :data:`CHROMIUM_ARGS`: the browser and its flags;
- :func:`write_explorer_notebook`: a tiny catalog (PNG images, 3 classes, vectors from a fixed
  projection of the pixels: the same "model" embeds an uploaded photo) and a notebook that builds a :class:`~fashion_utils.recommend.similarity.SimilarityIndex` on it and displays a
  :class:`~fashion_utils.views.explorer.RecommendationExplorer`; the same index is rebuilt in the test
  process to know the expected neighbours;
- :class:`ServerProcess`: a JupyterLab or Voilà server on a free loopback port with throw-away
  Jupyter folders, always stopped together with its kernels;
- :func:`wait_for_captions`, :func:`image_report`: what the page shows.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Flags measured to work on these machines (see issue 7); Playwright adds --headless itself too.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL_STATUS_IDLE = "Python 3 (ipykernel) | Idle"
NOTEBOOK_NAME = "explorer_test.ipynb"

# (articleType, masterCategory, base colour) of the tiny catalog's three classes.
CLASSES = [("Tshirts", "Apparel", (205, 45, 45)),
           ("Handbags", "Accessories", (40, 150, 60)),
           ("Sneakers", "Footwear", (45, 70, 200))]
PER_CLASS = 10
K = 5
QUERY_PX, RESULT_PX, THUMB_PX = 160, 112, 48  # the explorer's image sizes in the notebook
#: The notebook explorer's upload limit: small, so that the test can exceed it cheaply.
MAX_UPLOAD_BYTES = 200_000
#: The test's "model", which made the catalog's vectors and embeds uploaded photos, run by the
#: notebook's kernel and by the test process (the same source, executed in both): a fixed
#: projection of the photo's ink (1 - its pixels, shrunk to 8×8), so a sneaker finds sneakers.
EMBED_SOURCE = (
    "def embed_files(paths):\n"
    "    from PIL import Image\n"
    "    projection = np.random.default_rng(7).normal(size=(192, 16)).astype(np.float32)\n"
    "    pixels = [np.asarray(Image.open(p).convert('RGB').resize((8, 8)), np.float32).ravel()\n"
    "              for p in paths]\n"
    "    return (1 - np.stack(pixels) / 255) @ projection")


# --------------------------------------------------------------------------- browser


def find_chromium() -> str | None:
    """The Chromium executable: env ``FASHION_CHROMIUM`` if set, else Debian's ``/usr/bin/chromium``."""
    env = os.environ.get("FASHION_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for path in CHROMIUM_CANDIDATES:
        if Path(path).is_file():
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


# --------------------------------------------------------------------------- the tiny catalog and notebook


def _item_colour(class_pos: int, j: int) -> tuple[int, int, int]:
    """A colour unique to each product: its class's hue, a shade that depends on ``j``."""
    r, g, b = CLASSES[class_pos][2]
    shift = 9 * j - 40
    return tuple(int(np.clip(c + shift, 0, 255)) for c in (r, g, b))  # type: ignore[return-value]


def _draw_product(path: Path, class_pos: int, j: int, *, size: int = 96) -> None:
    """A small product-like drawing on white: a T-shirt, a handbag or a sneaker (PNG).

    Its centre pixel has the product's own colour, so the test can tell which product an
    ``<img>`` in the page shows.
    """
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    colour = _item_colour(class_pos, j)
    s = size / 96
    if class_pos == 0:  # T-shirt
        draw.polygon([(p[0] * s, p[1] * s) for p in
                      [(30, 14), (66, 14), (92, 32), (80, 46), (70, 40), (70, 88), (26, 88), (26, 40),
                       (16, 46), (4, 32)]], fill=colour)
    elif class_pos == 1:  # handbag
        draw.arc((30 * s, 8 * s, 66 * s, 48 * s), 180, 360, fill=colour, width=int(6 * s))
        draw.rounded_rectangle((14 * s, 30 * s, 82 * s, 86 * s), radius=int(8 * s), fill=colour)
    else:  # sneaker
        draw.polygon([(p[0] * s, p[1] * s) for p in
                      [(8, 40), (40, 36), (58, 50), (88, 56), (90, 72), (8, 72)]], fill=colour)
        draw.rectangle((8 * s, 72 * s, 90 * s, 80 * s), fill=(240, 240, 240), outline=(90, 90, 90))
    img.save(path)


@dataclass
class ExplorerNotebook:
    """The test's notebook, its catalog, and (built on first use) the same index in this process."""

    folder: Path
    notebook: Path
    catalog: pd.DataFrame
    vectors: np.ndarray

    @cached_property
    def index(self) -> Any:
        return build_index(self.catalog, self.vectors)

    @property
    def start_id(self) -> str:
        """The product the explorer shows first (the first catalog row)."""
        return str(self.catalog["id"].iloc[0])

    def label(self, item_id: str) -> str:
        return str(self.catalog.set_index("id").loc[str(item_id), "articleType"])

    def expected(self, item_id: str) -> list[tuple[int, str, float, str]]:
        """``(rank, label, score, id)`` of the k neighbours the explorer must show for ``item_id``."""
        return self._rows(self.index.query(str(item_id), K))

    def expected_for_photo(self, photo: Path, folder: Path) -> tuple[Path, list[tuple[int, str, float, str]]]:
        """The stored copy of an uploaded ``photo`` (as the explorer stores it) and the k
        neighbours the explorer must show for it, embedded by the same :data:`EMBED_SOURCE`."""
        from fashion_utils.catalog.image_files import save_uploaded_image

        stored = save_uploaded_image(photo.read_bytes(), name=photo.name, folder=folder)
        return stored, self._rows(self.index.query(embed_files([str(stored)])[0], K))

    def _rows(self, res: pd.DataFrame) -> list[tuple[int, str, float, str]]:
        return [(int(r["rank"]), self.label(r["id"]), float(r["score"]), str(r["id"])) for _, r in res.iterrows()]


def build_index(catalog: pd.DataFrame, vectors: np.ndarray) -> Any:
    """The index the notebook builds (same call, same arguments)."""
    from fashion_utils.recommend.similarity import SimilarityIndex

    return SimilarityIndex(catalog["id"], vectors, metadata=catalog[["id", "articleType", "masterCategory"]])


NOTEBOOK_CELLS = [
    ("markdown", "# Recommendation explorer (browser test)\n"
                 "> A tiny catalog written by `tests/test_browser.py`: 30 products, 3 classes,"
                 " vectors from a fixed projection of the pixels."),
    ("code", "import sys\n"
             "import numpy as np\n"
             "import pandas as pd\n"
             "from IPython.display import display\n"
             "from fashion_utils.recommend.similarity import SimilarityIndex\n"
             "from fashion_utils.views.explorer import RecommendationExplorer"),
    ("code", "catalog = pd.read_csv({csv!r}, dtype=str)\n"
             "vectors = np.load({npy!r})\n"
             "index = SimilarityIndex(catalog['id'], vectors,\n"
             "                        metadata=catalog[['id', 'articleType', 'masterCategory']])"),
    ("code", EMBED_SOURCE.replace("{", "{{").replace("}", "}}")),
    ("code", "explorer = RecommendationExplorer(index, catalog, k={k}, page_size=30, thumb_px={thumb},\n"
             "                                  query_px={query}, result_px={result},\n"
             "                                  embed_files=embed_files, max_upload_bytes={limit})\n"
             "display(explorer.widget)"),
    ("code", "print('kernel prefix:', sys.prefix)"),
]


def embed_files(paths: Sequence[str]) -> np.ndarray:
    """:data:`EMBED_SOURCE`'s function, run in this process."""
    namespace: dict[str, Any] = {"np": np}
    exec(EMBED_SOURCE, namespace)  # noqa: S102 - the notebook's own source, defined above
    return namespace["embed_files"](list(paths))


def write_photo(path: Path, *, class_pos: int, j: int, size: int = 300) -> Path:
    """A "phone photo" of a product (another size and format than the catalog's), for upload."""
    _draw_product(path, class_pos, j, size=size)
    return path


def write_explorer_notebook(folder: Path) -> ExplorerNotebook:
    """Write 30 product PNGs (3 classes), ``catalog.csv``, ``vectors.npy`` and the notebook.

    The vectors are :data:`EMBED_SOURCE`'s embeddings of the images: each product's neighbours
    are mostly of its own shape, and the scores differ from product to product.

    Args:
        folder: an empty folder (the Jupyter root of the test).

    Returns:
        The :class:`ExplorerNotebook`.
    """
    import nbformat

    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, (article, master, _) in enumerate(CLASSES):
        for j in range(PER_CLASS):
            item_id = str(2000 + c * PER_CLASS + j)
            path = images / f"{item_id}.png"
            _draw_product(path, c, j)
            rows.append({"id": item_id, "image_path": path.relative_to(folder).as_posix(),
                         "articleType": article, "masterCategory": master,
                         "productDisplayName": f"Test {article} {item_id}"})
    catalog = pd.DataFrame(rows)
    vectors = embed_files([str(folder / p) for p in catalog["image_path"]]).astype(np.float32)
    csv_path, npy_path = folder / "catalog.csv", folder / "vectors.npy"
    catalog.to_csv(csv_path, index=False)
    np.save(npy_path, vectors)

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in NOTEBOOK_CELLS:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source.format(
                csv=csv_path.name, npy=npy_path.name, k=K, thumb=THUMB_PX, query=QUERY_PX, result=RESULT_PX,
                limit=MAX_UPLOAD_BYTES)))
    notebook = folder / NOTEBOOK_NAME
    nbformat.write(nb, notebook)
    catalog = pd.read_csv(csv_path, dtype=str)  # exactly what the notebook reads (its cwd: the folder)
    catalog["image_path"] = [str(folder / p) for p in catalog["image_path"]]
    vectors = np.load(npy_path)
    return ExplorerNotebook(folder=folder, notebook=notebook, catalog=catalog, vectors=vectors)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jupyter_env(home: Path) -> dict[str, str]:
    """The environment of a throw-away Jupyter: its own config, data, runtime, settings, workspaces.

    ``labconfig/page_config.json`` disables JupyterLab's news toast (announcements plugin), which
    would cover part of the page.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "lab-settings", "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
            "IPYTHONDIR": "ipython"}
    for var, name in dirs.items():
        (home / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / name)
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """A Jupyter-family server (JupyterLab or Voilà) in its own process group.

    Args:
        kind: ``"lab"`` or ``"voila"``.
        root: the folder served (holds the notebook).
        home: an empty folder for the throw-away Jupyter folders and the log.
        notebook: Voilà only: the notebook to serve.
        start_timeout: seconds to wait for the server to answer.

    Use as a context manager; :meth:`stop` also ends the kernels the server started.
    """

    def __init__(self, kind: str, *, root: Path, home: Path, notebook: Path | None = None,
                 start_timeout: float = 60.0) -> None:
        if kind not in ("lab", "voila"):
            raise ValueError(f"kind must be 'lab' or 'voila'. Received: kind={kind!r}")
        self.kind, self.root, self.home, self.notebook = kind, Path(root), Path(home), notebook
        self.start_timeout = float(start_timeout)
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / f"{kind}.log"
        self._children: dict[int, Any] = {}

    # ----------------------------------------------------------------- start

    def command(self) -> list[str]:
        common = ["--no-browser", f"--port={self.port}"]
        if self.kind == "lab":
            return [sys.executable, "-m", "jupyterlab", *common, "--ServerApp.ip=127.0.0.1",
                    "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                    f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
                    "--ServerApp.allow_root=True", "--LabApp.extension_manager=readonly"]
        return [sys.executable, "-m", "voila", str(self.notebook), *common, "--Voila.ip=127.0.0.1",
                "--Voila.port_retries=0", f"--token={self.token}", f"--Voila.root_dir={self.root}"]

    def launch(self) -> "ServerProcess":
        """Start the server process on a free port and return at once (see :meth:`ensure_ready`)."""
        self.port = free_port()
        env = jupyter_env(self.home)  # also creates self.home
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.root, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        return self

    def ensure_ready(self) -> "ServerProcess":
        """Wait until the launched server answers; relaunch (twice at most) on a port clash.

        Raises:
            RuntimeError: it did not answer within ``start_timeout`` seconds, or exited; with its log.
        """
        if self.proc is None:
            self.launch()
        for attempt in range(3):  # the free port can be taken between the check and the bind
            if self._wait_ready():
                return self
            clash = self._port_clash()
            self.stop()
            if attempt == 2 or not clash:
                break
            self.launch()
        raise RuntimeError(f"{self.kind} did not answer within {self.start_timeout:.0f} s (or exited); "
                           f"log tail:\n{self.log_tail()}")

    def start(self) -> "ServerProcess":
        """:meth:`launch` then :meth:`ensure_ready`."""
        return self.launch().ensure_ready()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        probe = (f"{self.base_url}/api/status?token={self.token}" if self.kind == "lab" else None)
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                if probe:
                    with urllib.request.urlopen(probe, timeout=5) as resp:
                        if resp.status == 200:
                            return True
                else:  # Voilà renders (and executes) the notebook on GET /: only check the socket
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        return False

    def _port_clash(self) -> bool:
        return "already in use" in self.log_tail().lower()

    # ----------------------------------------------------------------- use

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        """A page URL with the token, e.g. ``url("lab/tree/x.ipynb")``."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def children(self) -> list[Any]:
        """The server's live descendant processes (its kernels), remembered for :meth:`stop`."""
        try:
            import psutil
        except ImportError:  # pragma: no cover - ipykernel depends on psutil
            return []
        if self.proc is None:
            return []
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            found = []
        for child in found:
            self._children[child.pid] = child
        return found

    # ----------------------------------------------------------------- stop

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the kernels and the server down; kill whatever is left of them."""
        if self.proc is None:
            return
        self.children()
        if self.proc.poll() is None and self.kind == "lab":
            try:  # jupyter_server's own shutdown also shuts its kernels down
                req = urllib.request.Request(f"{self.base_url}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {self.token}"})
                urllib.request.urlopen(req, timeout=5).close()
            except (OSError, urllib.error.URLError):
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=timeout / 3 if self.kind == "lab" else 0.01)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout / 3)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=timeout / 3)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass
        self._kill_children()
        self.proc = None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the server was started in its own session/group
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_children(self) -> None:
        """Kernels run in their own process group (jupyter_client starts a new session)."""
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return
        alive = []
        for child in self._children.values():
            try:
                if child.is_running():
                    child.terminate()
                    alive.append(child)
            except psutil.Error:
                pass
        _, still = psutil.wait_procs(alive, timeout=5)
        for child in still:
            try:
                child.kill()
            except psutil.Error:
                pass
        self._children.clear()

    def alive_children(self) -> list[int]:
        """Pids of remembered descendants still running (empty after :meth:`stop`)."""
        out = []
        for pid, child in self._children.items():
            try:
                if child.is_running() and child.status() != "zombie":
                    out.append(pid)
            except Exception:  # noqa: BLE001 - psutil.Error, without importing psutil here
                pass
        return out

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- page checks

CAPTION_RE = re.compile(r"#(\d+)\s+(.*?)\s+score\s+(-?\d+\.\d+)\s+id\s+(\S+)", re.S)


def parse_caption(text: str) -> tuple[int, str, float, str] | None:
    """``(rank, label, score, id)`` from a result caption's text, or ``None``."""
    match = CAPTION_RE.search(text.replace("\xa0", " "))
    if not match:
        return None
    rank, label, score, item_id = match.groups()
    return int(rank), label.strip(), float(score), item_id


def read_captions(page: Any, scope: str = ".fu-explorer") -> list[tuple[int, str, float, str] | None]:
    """The parsed result captions shown in ``scope`` (``None`` for one that does not parse)."""
    return [parse_caption(t) for t in page.locator(f"{scope} .fu-result-caption").all_inner_texts()]


def captions_match(seen: Sequence[Any], expected: Sequence[tuple[int, str, float, str]], *,
                   tol: float = 1.5e-3) -> bool:
    """Same ranks, labels and ids; scores equal to the 3 decimals shown (within ``tol``)."""
    if len(seen) != len(expected) or any(s is None for s in seen):
        return False
    return all(s[0] == e[0] and s[1] == e[1] and s[3] == e[3] and abs(s[2] - e[2]) <= tol
               for s, e in zip(seen, expected))


def wait_for_captions(page: Any, expected: Sequence[tuple[int, str, float, str]], *,
                      timeout: float = 30.0, scope: str = ".fu-explorer") -> list[Any]:
    """Poll the captions until they match ``expected``; returns the last captions seen."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while time.monotonic() < deadline:
        seen = read_captions(page, scope)
        if captions_match(seen, expected):
            return seen
        page.wait_for_timeout(150)
    return seen


IMAGE_REPORT_JS = """
(els) => els.map((img) => {
  const r = img.getBoundingClientRect();
  const style = getComputedStyle(img);
  let pixel = null;
  if (img.complete && img.naturalWidth > 0) {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    pixel = Array.from(ctx.getImageData(Math.floor(c.width / 2), Math.floor(c.height / 2), 1, 1).data.slice(0, 3));
  }
  return {tag: img.tagName, complete: img.complete, naturalWidth: img.naturalWidth,
          naturalHeight: img.naturalHeight, width: r.width, height: r.height,
          visible: r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none',
          src: (img.src || '').slice(0, 16), pixel};
})
"""


def image_report(page: Any, selector: str) -> list[dict[str, Any]]:
    """For each element matching ``selector``: decoded size, visibility and its centre pixel."""
    return page.locator(selector).evaluate_all(IMAGE_REPORT_JS)


def centre_pixel(path: str, size: int) -> tuple[int, int, int]:
    """The centre pixel of the explorer's PNG thumbnail of ``path`` at ``size`` px."""
    import io

    from PIL import Image

    from fashion_utils.views.widgets import png_thumbnail

    with Image.open(io.BytesIO(png_thumbnail(str(path), size))) as img:
        rgb = img.convert("RGB")
        return rgb.getpixel((rgb.width // 2, rgb.height // 2))  # type: ignore[return-value]


# --------------------------------------------------------------------------- a catalog at scale

#: The in-page timing of one pick: from the dropdown's change event to the query caption and
#: all five result captions showing the expected ids (``captions_ms``), then to every image
#: of the view decoded (``decoded_ms``); measured with the page's own ``performance.now()``.
PICK_TIMING_JS = """
async ({index, picked, first, last}) => {
  const root = document.querySelector('.fu-explorer');
  const select = root.querySelector('.fu-picker select');
  const has = (el, id) => el && new RegExp('id ' + id + '(\\\\s|$)').test(el.innerText);
  const done = () => {
    const caps = root.querySelectorAll('.fu-result-caption');
    return has(root.querySelector('.fu-query-caption'), picked) && caps.length >= 5
      && has(caps[0], first) && has(caps[caps.length - 1], last);
  };
  const t0 = performance.now();
  select.selectedIndex = index;
  select.dispatchEvent(new Event('change', {bubbles: true}));
  await new Promise((resolve, reject) => {
    if (done()) { resolve(); return; }
    const obs = new MutationObserver(() => { if (done()) { obs.disconnect(); resolve(); } });
    obs.observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
    setTimeout(() => { obs.disconnect(); reject(new Error('no update within 30 s')); }, 30000);
  });
  const t1 = performance.now();
  const imgs = Array.from(root.querySelectorAll('.fu-query-image, .fu-result-image'));
  await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
  return {captions_ms: t1 - t0, decoded_ms: performance.now() - t0};
}
"""

SCALE_NOTEBOOK_CELLS = [
    ("markdown", "# Recommendation explorer at scale (pick timing)"),
    ("code", "import numpy as np\n"
             "import pandas as pd\n"
             "from IPython.display import display\n"
             "from fashion_utils.views.explorer import RecommendationExplorer\n"
             "from fashion_utils.recommend.similarity import SimilarityIndex"),
    ("code", "catalog = pd.read_csv('catalog.csv', dtype=str)\n"
             "index = SimilarityIndex(catalog['id'], np.load('vectors.npy'),\n"
             "                        metadata=catalog.drop(columns=['image_path']))\n"
             "view = RecommendationExplorer(index, catalog, k=5, start=catalog['id'].iloc[0])\n"
             "display(view.widget)"),
]


@dataclass
class ScaleNotebook:
    """The timing notebook, its catalog and (built on first use) the same index here."""

    folder: Path
    notebook: Path
    catalog: pd.DataFrame
    vectors_path: Path

    @cached_property
    def index(self) -> Any:
        from fashion_utils.recommend.similarity import SimilarityIndex

        return SimilarityIndex(self.catalog["id"], np.load(self.vectors_path),
                               metadata=self.catalog.drop(columns=["image_path"]))


def write_scale_notebook(folder: Path, *, images_dir: Path, n: int, dim: int = 1280) -> ScaleNotebook:
    """A catalog of ``n`` products (the synthetic Kaggle catalog in ``images_dir``'s
    ``styles.csv``), ``dim``-d synthetic CNN-like vectors, and a notebook showing the explorer."""
    import nbformat

    from fashion_utils.tools.bench.recommender import synthetic_embeddings

    folder = Path(folder)
    from fashion_utils.catalog.csv_rows import read_csv_rows

    read = read_csv_rows(images_dir / "styles.csv")  # the package's reader: stray commas repaired
    styles = pd.DataFrame([fields for _, fields in read.rows], columns=read.header).head(n)
    if len(styles) < n:
        raise ValueError(f"{images_dir} holds {len(styles)} usable products, fewer than n={n}")
    styles["image_path"] = [str(images_dir / "images" / f"{i}.jpg") for i in styles["id"]]
    catalog = styles[["id", "image_path", "gender", "masterCategory", "subCategory", "articleType",
                      "baseColour", "season", "usage", "productDisplayName"]]
    catalog.to_csv(folder / "catalog.csv", index=False)
    vectors_path = folder / "vectors.npy"
    np.save(vectors_path, synthetic_embeddings(len(catalog), dim))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for kind, source in SCALE_NOTEBOOK_CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                        else nbformat.v4.new_code_cell(source))
    notebook = folder / "explorer_scale.ipynb"
    nbformat.write(nb, notebook)
    return ScaleNotebook(folder, notebook, pd.read_csv(folder / "catalog.csv", dtype=str), vectors_path)
