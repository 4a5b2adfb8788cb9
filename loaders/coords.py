"""Coordinate systems for the loaders: the Chinese consumer-map offsets, CRS parsing,
conversion to and from storage, and guards against the usual coordinate mistakes.

Why this module exists
----------------------
The store keeps CGCS2000 geographic coordinates (EPSG:4490, see :mod:`store.crs`), treated
as WGS84 for mapping (the two differ by centimetres). Street offices, however, bring points
copied from AutoNavi/Gaode or Tencent maps, which are in GCJ-02 (the state-mandated
obfuscation, 100–700 m off in the populated east), or from Baidu maps, in BD-09 (GCJ-02 plus
a further ~1 km). Neither is an EPSG system, so PROJ cannot convert them; this module does,
both ways, vectorised over numpy arrays. Official data in EPSG systems (including the
CGCS2000 Gauss-Krüger zones 4513–4554 and Web Mercator 3857) goes through pyproj.

The guards (:func:`check_bounds`, :func:`detect_swapped`, :func:`detect_offset`) let a loader
refuse or flag data before it reaches the store, with a bilingual message (Chinese first)
that says what to do.

The GCJ-02 formula
------------------
GCJ-02 is a closed-form forward offset (the widely published "eviltransform" polynomial on
the Krasovsky 1940 ellipsoid); it has no closed-form inverse. :func:`gcj02_to_wgs84` inverts
it by fixed-point iteration until the update is below 1e-9 degrees (about 0.1 mm), not with
the crude one-step inverse that is metres off. BD-09 is a small rotation and scaling of
GCJ-02 about the origin plus a fixed shift; its inverse is iterated the same way.

Outside China
-------------
Consumer maps apply the offsets only inside China. Like them (and like the common reference
implementations), points outside the rough box ``72.004 <= lon <= 137.8347``,
``0.8293 <= lat <= 55.8271`` pass through unchanged. The box is deliberately rough: it also
covers parts of Mongolia, Korea, Japan and South-East Asia, which is what the consumer map
providers' own SDKs do. Pass ``check=False`` to apply the formulas everywhere.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError

from store.crs import STORAGE_EPSG, metric_epsg_for_bounds

__all__ = [
    "CHINA_BOX",
    "BoundsCheck",
    "CrsSpec",
    "OffsetCheck",
    "SwapCheck",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "check_bounds",
    "detect_offset",
    "detect_swapped",
    "from_storage",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "parse_crs",
    "to_storage",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

Bounds = tuple[float, float, float, float]

# The offsets moved to store/offsets.py (the dashboard draws over GCJ-02 basemaps with them,
# and may not import loaders); re-exported here for the loaders and their callers.
from store.offsets import (  # noqa: E402
    CHINA_BOX,
    FloatArray,
    _as_pair,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

_GEOD = Geod(ellps="WGS84")


# ---------------------------------------------------------------------------
# CRS specification and parsing
# ---------------------------------------------------------------------------

CrsKind = Literal["epsg", "gcj02", "bd09"]


@dataclass(frozen=True)
class CrsSpec:
    """A coordinate system as the loaders understand it.

    Attributes
    ----------
    kind
        ``"epsg"`` for anything PROJ knows by EPSG code; ``"gcj02"`` or ``"bd09"`` for the
        Chinese consumer-map offsets (geographic degrees, not EPSG systems).
    epsg
        The EPSG code when ``kind == "epsg"``, otherwise ``None``.
    """

    kind: CrsKind
    epsg: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "epsg":
            if not isinstance(self.epsg, int) or isinstance(self.epsg, bool) or self.epsg <= 0:
                raise ValueError(
                    f"CrsSpec(kind='epsg') needs a positive EPSG code, not {self.epsg!r}"
                )
        elif self.kind in ("gcj02", "bd09"):
            if self.epsg is not None:
                raise ValueError(f"CrsSpec(kind={self.kind!r}) takes no EPSG code")
        else:
            raise ValueError(f"CrsSpec kind must be 'epsg', 'gcj02' or 'bd09', not {self.kind!r}")

    def __str__(self) -> str:
        return f"EPSG:{self.epsg}" if self.kind == "epsg" else self.kind


#: The storage CRS as a :class:`CrsSpec`.
STORAGE_CRS = CrsSpec("epsg", STORAGE_EPSG)

_GCJ_ALIASES = frozenset(
    {"gcj02", "gcj", "gcj02ll", "火星", "火星坐标", "火星坐标系", "高德", "腾讯", "amap", "gaode"}
)
_BD_ALIASES = frozenset({"bd09", "bd09ll", "baidu", "百度", "百度坐标", "百度坐标系"})
_EPSG_ALIASES = {
    "wgs84": 4326,
    "wgs1984": 4326,
    "gps": 4326,
    "cgcs2000": 4490,
    "国家2000": 4490,
    "2000国家大地坐标系": 4490,
    "webmercator": 3857,
    "pseudomercator": 3857,
}
_EPSG_RE = re.compile(r"^(?:epsg\s*[:：]\s*)?(\d{4,6})$", re.IGNORECASE)

_ACCEPTED_FORMS = (
    "EPSG 代码 / EPSG codes: 4326, EPSG:4490, epsg:4549 (Gauss-Krüger 4513–4554), 3857; "
    "wgs84, CGCS2000; gcj02, GCJ-02, gcj, 火星坐标, 高德, 腾讯; bd09, BD-09, 百度; "
    "WKT / .prj 文本 / WKT or .prj text"
)


def _refuse(text: str, why: str) -> ValueError:
    return ValueError(
        f"无法识别坐标系 {text!r}：{why}。可用的写法：{_ACCEPTED_FORMS}。 / "
        f"Cannot understand the coordinate system {text!r}: {why}. Accepted forms: "
        f"{_ACCEPTED_FORMS}."
    )


def _checked_epsg(code: int, text: str) -> CrsSpec:
    """An EPSG spec, after making sure PROJ knows the code and it is a 2-D horizontal CRS."""
    try:
        crs = CRS.from_epsg(code)
    except CRSError:
        raise _refuse(text, f"EPSG:{code} 不存在 / EPSG:{code} is unknown to PROJ") from None
    if not (crs.is_geographic or crs.is_projected):
        raise _refuse(
            text,
            f"EPSG:{code}（{crs.name}）不是平面或经纬度坐标系 / "
            f"EPSG:{code} ({crs.name}) is not a horizontal CRS",
        )
    return CrsSpec("epsg", code)


def parse_crs(text: str) -> CrsSpec:
    """Read a ``--crs`` value or the text of a ``.prj`` file.

    Parameters
    ----------
    text
        An EPSG code (``"4326"``, ``"EPSG:4490"``, ``"epsg:4549"``), a name (``"wgs84"``,
        ``"CGCS2000"``), one of the consumer-map systems (``"gcj02"``, ``"GCJ-02"``,
        ``"gcj"``, ``"火星坐标"``, ``"高德"``, ``"bd09"``, ``"BD-09"``, ``"百度"``), or WKT /
        ``.prj`` text, which pyproj matches to an EPSG code (confidence ≥ 70 %).
        Case, spaces, hyphens and underscores do not matter in the names.

    Returns
    -------
    CrsSpec

    Raises
    ------
    ValueError
        When the text is none of these; the message names the input and lists the
        accepted forms, in Chinese and English.

    Examples
    --------
    >>> parse_crs("EPSG:4490")
    CrsSpec(kind='epsg', epsg=4490)
    >>> parse_crs("火星坐标")
    CrsSpec(kind='gcj02', epsg=None)
    """
    if not isinstance(text, str) or not text.strip():
        raise _refuse(str(text), "空值 / empty")
    stripped = text.strip()
    key = re.sub(r"[\s_\-]", "", stripped.lower())
    if key in _GCJ_ALIASES:
        return CrsSpec("gcj02")
    if key in _BD_ALIASES:
        return CrsSpec("bd09")
    if key in _EPSG_ALIASES:
        return CrsSpec("epsg", _EPSG_ALIASES[key])
    if key == "bd09mc":
        raise _refuse(
            stripped,
            "百度墨卡托（BD-09 MC）暂不支持，请导出为 BD-09 经纬度 / "
            "Baidu Mercator (BD-09 MC) is not supported; export BD-09 longitude/latitude",
        )
    match = _EPSG_RE.match(stripped)
    if match:
        return _checked_epsg(int(match.group(1)), stripped)
    try:
        crs = CRS.from_user_input(stripped)
    except CRSError:
        raise _refuse(
            stripped, "不是已知的名称、EPSG 代码或 WKT / not a known name, EPSG code or WKT"
        ) from None
    code = crs.to_epsg(min_confidence=70)
    if code is None:
        raise _refuse(
            stripped,
            f"无法把 {crs.name!r} 对应到 EPSG 代码，请用 --crs EPSG:代码 指定 / "
            f"could not match {crs.name!r} to an EPSG code; give --crs EPSG:<code>",
        )
    return _checked_epsg(code, stripped)


# ---------------------------------------------------------------------------
# To and from storage
# ---------------------------------------------------------------------------

_local = threading.local()


def _transformer(src: int, dst: int) -> Transformer:
    """A cached ``always_xy`` transformer (one cache per thread: Transformers are not
    thread-safe)."""
    cache: dict[tuple[int, int], Transformer] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = {}
        _local.cache = cache
    key = (src, dst)
    if key not in cache:
        cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return cache[key]


def _pyproj(src: int, dst: int, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    if src == dst:
        return x, y
    ox, oy = _transformer(src, dst).transform(x, y)
    return np.asarray(ox, dtype=np.float64), np.asarray(oy, dtype=np.float64)


def to_storage(x: npt.ArrayLike, y: npt.ArrayLike, crs: CrsSpec) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates in ``crs`` to storage longitude/latitude (EPSG:4490).

    Parameters
    ----------
    x, y
        Easting/longitude and northing/latitude, in that order whatever the CRS's own
        axis order (pyproj ``always_xy``). Arrays or scalars, broadcast together.
    crs
        The source CRS. GCJ-02 and BD-09 are converted with :func:`gcj02_to_wgs84` /
        :func:`bd09_to_wgs84`, and WGS84 is taken as CGCS2000 (they differ by centimetres).

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in EPSG:4490, float64. Points PROJ cannot convert come back as
        ``inf``/NaN; :func:`check_bounds` reports them.

    Notes
    -----
    PROJ has no published parameters between the old Beijing 1954 / Xian 1980 datums and
    CGCS2000, so such EPSG inputs are converted with a ballpark (datum-less) step that can be
    tens of metres off; ask the surveying bureau for CGCS2000 data in that case.
    """
    ox, oy = _as_pair(x, y)
    if crs.kind == "gcj02":
        return gcj02_to_wgs84(ox, oy)
    if crs.kind == "bd09":
        return bd09_to_wgs84(ox, oy)
    assert crs.epsg is not None  # guaranteed by CrsSpec
    return _pyproj(crs.epsg, STORAGE_EPSG, ox, oy)


def from_storage(
    lon: npt.ArrayLike, lat: npt.ArrayLike, crs: CrsSpec
) -> tuple[FloatArray, FloatArray]:
    """Convert storage longitude/latitude (EPSG:4490) to ``crs``: the reverse of
    :func:`to_storage`, for exports and for drawing on GCJ-02 basemaps.

    Parameters
    ----------
    lon, lat
        EPSG:4490 degrees, arrays or scalars (broadcast together).
    crs
        The target CRS.

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)`` in ``crs`` (easting/longitude first), float64.
    """
    ox, oy = _as_pair(lon, lat)
    if crs.kind == "gcj02":
        return wgs84_to_gcj02(ox, oy)
    if crs.kind == "bd09":
        return wgs84_to_bd09(ox, oy)
    assert crs.epsg is not None  # guaranteed by CrsSpec
    return _pyproj(STORAGE_EPSG, crs.epsg, ox, oy)


# ---------------------------------------------------------------------------
# Guards
# ---------------------------------------------------------------------------

_M_PER_DEG_LAT = 111_320.0


def _readonly(a: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """A read-only ``intp`` copy of ``a``: the frozen result classes hand out positions that
    nobody should modify in place."""
    out: npt.NDArray[np.intp] = np.array(a, dtype=np.intp)
    out.setflags(write=False)
    return out


def _expand(bounds: Bounds, margin_m: float) -> Bounds:
    """``bounds`` grown by ``margin_m`` metres on every side (degrees, at its centre)."""
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not (minx < maxx and miny < maxy):
        raise ValueError(f"bounds must be (minx, miny, maxx, maxy) with min < max, got {bounds!r}")
    dlat = margin_m / _M_PER_DEG_LAT
    coslat = max(math.cos(math.radians((miny + maxy) / 2.0)), 0.01)
    dlon = margin_m / (_M_PER_DEG_LAT * coslat)
    return minx - dlon, miny - dlat, maxx + dlon, maxy + dlat


def _inside(x: FloatArray, y: FloatArray, box: Bounds) -> npt.NDArray[np.bool_]:
    minx, miny, maxx, maxy = box
    return (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)


def _fmt_bounds(b: Bounds) -> str:
    return "({:.4f}, {:.4f}, {:.4f}, {:.4f})".format(*b)


@dataclass(frozen=True, eq=False)
class BoundsCheck:
    """Result of :func:`check_bounds`.

    Attributes
    ----------
    n_points
        Points checked.
    outside
        Positions (0-based, read-only array) of the points outside the bounds, including
        non-finite ones.
    bounds
        The bounds as given, ``(minx, miny, maxx, maxy)``.
    margin_m
        The tolerance added around them, metres.
    message
        Chinese first, then English; empty when every point is inside.
    """

    n_points: int
    outside: npt.NDArray[np.intp] = field(repr=False)
    bounds: Bounds
    margin_m: float
    message: str

    @property
    def ok(self) -> bool:
        """True when no point is outside."""
        return self.outside.size == 0


def check_bounds(
    lon: npt.ArrayLike, lat: npt.ArrayLike, bounds: Bounds, *, margin_m: float = 1000.0
) -> BoundsCheck:
    """Find the points outside the configured area's bounds.

    A loader refuses (or, not in ``--strict`` mode, rejects row by row) points that are not
    where the area is: typos, wrong columns, a wrong ``--crs``, swapped axes, or data for
    another district.

    Parameters
    ----------
    lon, lat
        Storage degrees (EPSG:4490), arrays or scalars.
    bounds
        ``(minx, miny, maxx, maxy)`` of the area, degrees.
    margin_m
        Tolerance around the bounds, metres (converted to degrees at the bounds' centre),
        so that points just over the edge of the area are not refused.

    Returns
    -------
    BoundsCheck
        ``outside`` holds the positions of the offending points (NaN/inf count as
        outside); ``message`` says what to do.
    """
    x, y = _as_pair(lon, lat)
    x, y = x.ravel(), y.ravel()
    box = _expand(bounds, margin_m)
    outside = np.flatnonzero(~_inside(x, y, box))
    n, k = x.size, outside.size
    message = ""
    if k:
        examples = "; ".join(f"({x[i]:.6f}, {y[i]:.6f})" for i in outside[:5])
        message = (
            f"{n} 个点中有 {k} 个落在本区域范围 {_fmt_bounds(bounds)}"
            f"（含 {margin_m:g} 米余量）之外，例如 {examples}。"
            "请检查经纬度列是否选对、是否颠倒、--crs 坐标系是否正确，或数据是否属于本区域。 / "
            f"{k} of {n} points lie outside the area's bounds {_fmt_bounds(bounds)} "
            f"(with a {margin_m:g} m margin), e.g. {examples}. Check that the right columns "
            "are used as longitude and latitude and not swapped, that --crs is right, and "
            "that the data belongs to this area."
        )
    return BoundsCheck(
        n_points=n,
        outside=_readonly(outside),
        bounds=(float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])),
        margin_m=float(margin_m),
        message=message,
    )


@dataclass(frozen=True, eq=False)
class SwapCheck:
    """Result of :func:`detect_swapped`.

    Attributes
    ----------
    swapped
        True when most points are inside the bounds only once x and y are exchanged.
    n_points
        Points with finite coordinates that were checked.
    share_inside
        Share of those inside the bounds as given.
    share_inside_swapped
        Share inside after exchanging x and y.
    rows_swapped
        Positions (0-based, read-only) of points that are outside as given but inside when
        exchanged: for data where only some rows are swapped.
    message
        Chinese first, then English.
    """

    swapped: bool
    n_points: int
    share_inside: float
    share_inside_swapped: float
    rows_swapped: npt.NDArray[np.intp] = field(repr=False)
    message: str


def detect_swapped(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    bounds: Bounds,
    *,
    crs: CrsSpec | None = None,
    margin_m: float = 1000.0,
    majority: float = 0.5,
) -> SwapCheck:
    """Tell whether the two coordinate columns look exchanged.

    Latitude/longitude columns are often swapped in spreadsheets, and Chinese surveying
    convention calls the northing ``X`` and the easting ``Y``, the opposite of GIS.

    Parameters
    ----------
    x, y
        The coordinates as read (x meant as longitude/easting).
    bounds
        ``(minx, miny, maxx, maxy)`` of the area in storage degrees.
    crs
        The declared CRS of ``x, y``; both orders are converted with :func:`to_storage`
        before comparing. ``None`` means they are already storage degrees.
    margin_m
        Tolerance around the bounds, metres.
    majority
        Share of points that must be inside after the swap (and not before) to say
        "swapped".

    Returns
    -------
    SwapCheck
    """
    ax, ay = _as_pair(x, y)
    ax, ay = ax.ravel(), ay.ravel()
    finite = np.isfinite(ax) & np.isfinite(ay)
    idx = np.flatnonzero(finite)
    ax, ay = ax[idx], ay[idx]
    box = _expand(bounds, margin_m)
    spec = crs or STORAGE_CRS
    with np.errstate(all="ignore"):
        gx, gy = to_storage(ax, ay, spec)
        sx, sy = to_storage(ay, ax, spec)
    given = _inside(gx, gy, box)
    swapped_in = _inside(sx, sy, box)
    n = int(idx.size)
    share = float(given.mean()) if n else 0.0
    share_sw = float(swapped_in.mean()) if n else 0.0
    rows = idx[swapped_in & ~given]
    verdict = n > 0 and share_sw >= majority and share < majority
    if verdict:
        message = (
            f"经纬度可能颠倒：按原样只有 {share:.0%} 的点在本区域范围内，"
            f"交换两列后有 {share_sw:.0%}。"
            "请交换经度、纬度两列（或在映射文件中对调列名）后重新导入。"
            f"（测量坐标中 X 常指北坐标、Y 指东坐标。） / "
            f"Longitude and latitude look swapped: as given only {share:.0%} of the points "
            f"are inside the area, exchanged {share_sw:.0%}. Swap the two columns (or their "
            "names in the mapping file) and load again. (Surveyors' X is often the northing "
            "and Y the easting.)"
        )
    elif rows.size:
        message = (
            f"{n} 个点中有 {rows.size} 个只有在交换经纬度后才落在本区域内，这些行可能填反了，"
            "请逐行核对。 / "
            f"{rows.size} of {n} points are inside the area only with longitude and latitude "
            "exchanged; those rows were probably entered the wrong way round, check them."
        )
    else:
        message = "未发现经纬度颠倒。 / No sign of swapped longitude and latitude."
    return SwapCheck(
        swapped=bool(verdict),
        n_points=n,
        share_inside=share,
        share_inside_swapped=share_sw,
        rows_swapped=_readonly(rows),
        message=message,
    )


OffsetVerdict = Literal["gcj02", "bd09"]


@dataclass(frozen=True)
class OffsetCheck:
    """Result of :func:`detect_offset`.

    Attributes
    ----------
    verdict
        ``"gcj02"`` or ``"bd09"`` when the data clearly fits the reference better after
        that correction, else ``None``.
    method
        ``"inside"``: fit is the share of points inside the reference polygons (higher is
        better); ``"distance"``: fit is the median distance in metres to the nearest
        reference geometry (lower is better); ``"none"``: nothing to compare.
    n_points
        Points with finite coordinates used.
    fit_as_given, fit_gcj02, fit_bd09
        The fit as given and after gcj02→wgs84 / bd09→wgs84.
    shift_gcj02_m, shift_bd09_m
        Median distance in metres each correction moves the points (the implied
        systematic offset).
    message
        Chinese first, then English; names the fix (``--crs gcj02`` / ``--crs bd09``).
    """

    verdict: OffsetVerdict | None
    method: Literal["inside", "distance", "none"]
    n_points: int
    fit_as_given: float
    fit_gcj02: float
    fit_bd09: float
    shift_gcj02_m: float
    shift_bd09_m: float
    message: str


def _median_shift_m(x0: FloatArray, y0: FloatArray, x1: FloatArray, y1: FloatArray) -> float:
    if x0.size == 0:
        return 0.0
    _, _, dist = _GEOD.inv(x0, y0, x1, y1)
    return float(np.median(dist))


def _to_metric(geoms: npt.NDArray[np.object_], epsg: int) -> npt.NDArray[np.object_]:
    tr = _transformer(STORAGE_EPSG, epsg)

    def project(coords: FloatArray) -> FloatArray:
        px, py = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([px, py])

    return np.asarray(shapely.transform(geoms, project))


def detect_offset(
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
    reference: npt.ArrayLike,
    *,
    min_points: int = 5,
    min_gain: float = 0.1,
    max_ratio: float = 0.5,
    min_gain_m: float = 5.0,
    gcj_shift_m: tuple[float, float] = (25.0, 700.0),
    bd_shift_m: tuple[float, float] = (600.0, 1600.0),
) -> OffsetCheck:
    """Tell whether points that were loaded as WGS84/CGCS2000 are really GCJ-02 or BD-09.

    Data copied from AutoNavi, Tencent or Baidu maps looks plausible but sits a systematic
    few hundred metres off: incidents land in the neighbouring grid. This compares how well
    the points fit data already in the store as given, after gcj02→wgs84 and after
    bd09→wgs84, and names the correction only when it clearly helps.

    Parameters
    ----------
    lon, lat
        The new points as they would be stored (EPSG:4490 degrees).
    reference
        Shapely geometries in EPSG:4490 already trusted: grid polygons (then the fit is the
        share of points inside them) or building points (then the fit is the median
        distance in metres to the nearest one, measured in the Gauss-Krüger zone of
        :func:`store.crs.metric_epsg_for_bounds`).
    min_points
        Fewer usable points than this give no verdict.
    min_gain
        ``"inside"``: the corrected share must exceed the share as given by this much, and
        the share of points left outside must at least halve.
    max_ratio, min_gain_m
        ``"distance"``: the corrected median distance must be at most ``max_ratio`` times
        the one as given and at least ``min_gain_m`` metres shorter.
    gcj_shift_m, bd_shift_m
        The median distance the correction moves the points must lie in this range (it is
        what GCJ-02 / BD-09 do in China; zero outside it). GCJ-02 moves points 100–700 m in
        the populated east, but only ~30 m around 93–99°E in Qinghai and western Gansu,
        hence the default lower bound of 25 m. BD-09 moves points 0.7–1.5 km.

    Returns
    -------
    OffsetCheck
    """
    x, y = _as_pair(lon, lat)
    x, y = x.ravel(), y.ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    ref = np.asarray(reference, dtype=object).ravel()
    ref = ref[~(shapely.is_missing(ref) | shapely.is_empty(ref))]
    nan = float("nan")
    if n < min_points or ref.size == 0:
        if n < min_points:
            why_zh = f"可用的点太少（{n} 个，至少需要 {min_points} 个）"
            why_en = f"too few usable points ({n}; at least {min_points} needed)"
        else:
            why_zh, why_en = (
                "没有已有的网格或楼栋可比较",
                "no existing grids or buildings to compare with",
            )
        return OffsetCheck(
            None, "none", n, nan, nan, nan, nan, nan,
            f"未检查系统偏移：{why_zh}。 / Systematic offset not checked: {why_en}.",
        )  # fmt: skip

    gx, gy = gcj02_to_wgs84(x, y)
    bx, by = bd09_to_wgs84(x, y)
    shift_g = _median_shift_m(x, y, gx, gy)
    shift_b = _median_shift_m(x, y, bx, by)
    candidates = {"given": (x, y), "gcj02": (gx, gy), "bd09": (bx, by)}

    # Polygon (3) and MultiPolygon (6) only: "inside" needs area; otherwise use distances
    polygonal = bool(np.all(np.isin(shapely.get_type_id(ref), (3, 6))))
    fit: dict[str, float] = {}
    clear: dict[str, bool] = {}
    if polygonal:
        method: Literal["inside", "distance"] = "inside"
        tree = shapely.STRtree(ref)
        for name, (cx, cy) in candidates.items():
            pts = shapely.points(cx, cy)
            hit = np.unique(tree.query(pts, predicate="intersects")[0])
            fit[name] = hit.size / n
        miss0 = 1.0 - fit["given"]
        for name in ("gcj02", "bd09"):
            gain = fit[name] - fit["given"]
            clear[name] = gain >= min_gain and (1.0 - fit[name]) <= 0.5 * miss0
    else:
        method = "distance"
        minx, miny, maxx, maxy = shapely.total_bounds(ref)
        epsg = metric_epsg_for_bounds((minx, miny, maxx, maxy))
        tree = shapely.STRtree(_to_metric(ref, epsg))
        for name, (cx, cy) in candidates.items():
            px, py = _pyproj(STORAGE_EPSG, epsg, cx, cy)
            _, dist = tree.query_nearest(
                shapely.points(px, py), return_distance=True, all_matches=False
            )
            fit[name] = float(np.median(dist))
        for name in ("gcj02", "bd09"):
            clear[name] = (
                fit[name] <= max_ratio * fit["given"] and fit["given"] - fit[name] >= min_gain_m
            )
    clear["gcj02"] = clear["gcj02"] and gcj_shift_m[0] <= shift_g <= gcj_shift_m[1]
    clear["bd09"] = clear["bd09"] and bd_shift_m[0] <= shift_b <= bd_shift_m[1]

    better = (lambda a, b: a > b) if method == "inside" else (lambda a, b: a < b)
    verdict: OffsetVerdict | None = None
    if clear["gcj02"] and clear["bd09"]:
        verdict = "gcj02" if better(fit["gcj02"], fit["bd09"]) else "bd09"
    elif clear["gcj02"]:
        verdict = "gcj02"
    elif clear["bd09"]:
        verdict = "bd09"

    if method == "inside":
        figs_zh = (
            f"按原样 {fit['given']:.0%} 的点落在已有网格内，按 GCJ-02 纠正后 {fit['gcj02']:.0%}，"
            f"按 BD-09 纠正后 {fit['bd09']:.0%}"
        )
        figs_en = (
            f"{fit['given']:.0%} of the points fall inside the existing grids as given, "
            f"{fit['gcj02']:.0%} after a GCJ-02 correction, {fit['bd09']:.0%} after BD-09"
        )
    else:
        figs_zh = (
            f"到最近已有要素的中位距离：按原样 {fit['given']:.0f} 米，按 GCJ-02 纠正后 "
            f"{fit['gcj02']:.0f} 米，按 BD-09 纠正后 {fit['bd09']:.0f} 米"
        )
        figs_en = (
            f"median distance to the nearest existing feature {fit['given']:.0f} m as given, "
            f"{fit['gcj02']:.0f} m after a GCJ-02 correction, {fit['bd09']:.0f} m after BD-09"
        )
    if verdict is not None:
        shift = shift_g if verdict == "gcj02" else shift_b
        source_zh = (
            "来自高德、腾讯等地图的 GCJ-02（火星坐标）数据"
            if verdict == "gcj02"
            else "来自百度地图的 BD-09 数据"
        )
        source_en = "GCJ-02 (AutoNavi/Gaode, Tencent)" if verdict == "gcj02" else "BD-09 (Baidu)"
        message = (
            f"数据整体偏离已有数据约 {shift:.0f} 米，看起来是{source_zh}：{figs_zh}。"
            f"请加上 --crs {verdict} 重新导入。 / "
            f"The data sits a systematic ~{shift:.0f} m off the existing data and looks like "
            f"{source_en}: {figs_en}. Load it again with --crs {verdict}."
        )
    else:
        message = f"未发现系统偏移：{figs_zh}。 / No systematic offset found: {figs_en}."
    return OffsetCheck(
        verdict=verdict,
        method=method,
        n_points=n,
        fit_as_given=fit["given"],
        fit_gcj02=fit["gcj02"],
        fit_bd09=fit["bd09"],
        shift_gcj02_m=shift_g,
        shift_bd09_m=shift_b,
        message=message,
    )
