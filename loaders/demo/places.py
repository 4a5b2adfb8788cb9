"""Key places (重点场所), facilities (cameras, hydrants, emergency supplies) and roads.

Places and facilities stand a few metres off the road, inside a block, so each lies in
exactly one grid. The planted incident hotspots are anchored on places: the first market,
a cluster of entertainment venues (a nightlife street) and an old residential compound;
the rising area by the construction site; the new spot (a night market opened in the final
month) by a fifth block of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from loaders.demo import names
from loaders.demo.geom import edge_points
from loaders.demo.layout import Layout
from loaders.demo.territory import Territory

#: Name patterns of key places by kind (``{}`` takes a place stem).
PLACE_NAMES = {
    "market": ("{}农贸市场",),
    "school": ("{}小学", "{}中学"),
    "kindergarten": ("{}幼儿园", "{}第二幼儿园"),
    "hospital": ("{}医院",),
    "clinic": ("{}社区卫生服务站", "{}诊所"),
    "entertainment": ("{}KTV", "{}酒吧", "{}网吧", "{}足浴城"),
    "hotel": ("{}宾馆", "{}快捷酒店"),
    "fire_risk_enterprise": ("{}服装厂", "{}物流仓库", "{}家具城", "{}商场"),
    "hazardous_chemicals": ("{}化工仓储",),
    "petrol_station": ("中石化{}加油站",),
    "elderly_care": ("{}颐养院", "{}老年公寓"),
    "construction_site": ("{}安置房项目工地",),
    "religious": ("{}寺",),
}
#: Camera kinds and the share of Sharp-Eyes (雪亮) cameras.
XUELIANG_SHARE = 0.6
CAMERA_RADIUS_M = (30.0, 80.0)
#: Metres off the road centreline for places, hydrants and supply points.
PLACE_OFFSET_M = (8.0, 18.0)
HYDRANT_OFFSET_M = (2.5, 5.0)
CAMERA_OFFSET_M = 6.0
#: Smallest distance between two planted centres, in metres.
HOTSPOT_SEPARATION_M = 550.0
#: The planted patterns anchored on blocks, in the order their blocks are chosen.
ANCHORS = ("market", "nightlife", "old_compound", "rising", "new_spot")
#: Entertainment venues clustered along the nightlife street.
NIGHTLIFE_VENUES = 4


@dataclass
class Anchors:
    """Blocks that carry the planted incident patterns: ``market``, ``nightlife``,
    ``old_compound``, ``rising`` and ``new_spot``."""

    blocks: dict[str, int]


def choose_anchors(layout: Layout, village: np.ndarray, rng: np.random.Generator) -> Anchors:
    """Five interior urban blocks, far apart, for the planted hotspots, the rising area and
    the new spot. The candidates' order comes from one permutation, so the first four are
    those chosen before the new spot was added."""
    xy = shapely.get_coordinates(shapely.centroid(layout.block_poly))
    cand = np.flatnonzero((layout.block_radius < 0.65) & ~village)
    cand = cand[rng.permutation(len(cand))]
    chosen: list[int] = []
    for b in cand:
        if all(np.hypot(*(xy[b] - xy[c])) >= HOTSPOT_SEPARATION_M for c in chosen):
            chosen.append(int(b))
        if len(chosen) == len(ANCHORS):
            break
    if len(chosen) < len(ANCHORS):
        raise ValueError(f"area too small to plant {len(ANCHORS)} separate patterns")
    return Anchors(dict(zip(ANCHORS, chosen, strict=True)))


def key_places(
    layout: Layout,
    territory: Territory,
    anchors: Anchors,
    cfg: dict,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Key places with ``code, name, kind, x, y, block``; the first market, the first
    ``NIGHTLIFE_VENUES`` entertainment venues and the construction site stand in their
    anchor blocks, the rest in random urban blocks."""
    kinds = [k for k, n in cfg["key_places"].items() for _ in range(n)]
    urban = np.flatnonzero(territory.grid["kind"].to_numpy()[territory.block_grid] == "urban")
    blocks = rng.choice(urban, size=len(kinds))
    pinned = {"market": 1, "entertainment": NIGHTLIFE_VENUES, "construction_site": 1}
    anchor_of = {"market": "market", "entertainment": "nightlife", "construction_site": "rising"}
    seen: dict[str, int] = {}
    for i, k in enumerate(kinds):
        if seen.get(k, 0) < pinned.get(k, 0):
            blocks[i] = anchors.blocks[anchor_of[k]]
        seen[k] = seen.get(k, 0) + 1
    xy = edge_points(layout, blocks, PLACE_OFFSET_M, rng)
    stems = names.place_stems(len(kinds), rng)
    pattern = [PLACE_NAMES[k][rng.integers(len(PLACE_NAMES[k]))] for k in kinds]
    return pd.DataFrame(
        {
            "name": [p.format(s) for p, s in zip(pattern, stems, strict=True)],
            "kind": kinds,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "block": blocks,
        }
    )


def facilities(
    layout: Layout, territory: Territory, cfg: dict, rng: np.random.Generator
) -> pd.DataFrame:
    """Cameras at road intersections, hydrants along roads, one emergency supply point
    per community: ``kind, name, view_radius_m, x, y, block``."""
    parts = [_cameras(layout, cfg["cameras"], rng)]
    perimeter = shapely.length(layout.block_poly)
    hb = rng.choice(layout.n_blocks, size=cfg["hydrants"], p=perimeter / perimeter.sum())
    hxy = edge_points(layout, hb, HYDRANT_OFFSET_M, rng)
    parts.append(
        pd.DataFrame(
            {
                "kind": "hydrant",
                "name": None,
                "view_radius_m": np.nan,
                "x": hxy[:, 0],
                "y": hxy[:, 1],
                "block": hb,
            }
        )
    )
    comm_of_block = territory.grid["community_code"].to_numpy()[territory.block_grid]
    sb = np.array(
        [rng.choice(np.flatnonzero(comm_of_block == c)) for c in territory.community["code"]]
    )
    sxy = edge_points(layout, sb, PLACE_OFFSET_M, rng)
    parts.append(
        pd.DataFrame(
            {
                "kind": "emergency_supply",
                "name": [f"{n}应急物资储备点" for n in territory.community["name"]],
                "view_radius_m": np.nan,
                "x": sxy[:, 0],
                "y": sxy[:, 1],
                "block": sb,
            }
        )
    )
    return pd.concat(parts, ignore_index=True)


def _cameras(layout: Layout, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` cameras at distinct intersections, each a few metres into an adjacent block
    (towards its centre), so it lies in a grid while watching the crossing."""
    starts = [layout.edge_nodes[h[:, 0], h[:, 1]] for h in layout.block_halfedges]
    node = np.concatenate(starts)
    block = np.repeat(np.arange(layout.n_blocks), [len(s) for s in starts])
    degree = np.bincount(node)
    crossing = degree[node] >= 3  # a node shared by three or more blocks is a crossing
    pick = rng.choice(np.flatnonzero(crossing), size=min(n * 3, int(crossing.sum())), replace=False)
    _, first = np.unique(node[pick], return_index=True)
    pick = pick[np.sort(first)][:n]
    p = layout.node_xy[node[pick]]
    c = shapely.get_coordinates(shapely.centroid(layout.block_poly[block[pick]]))
    d = c - p
    xy = p + d / np.linalg.norm(d, axis=1, keepdims=True) * CAMERA_OFFSET_M
    inner = shapely.buffer(layout.block_poly[block[pick]], -1.0)
    bad = ~shapely.contains_xy(inner, xy[:, 0], xy[:, 1])
    xy[bad] = shapely.get_coordinates(shapely.point_on_surface(inner[bad]))
    kind = np.where(rng.random(len(pick)) < XUELIANG_SHARE, "camera_xueliang", "camera_tianwang")
    return pd.DataFrame(
        {
            "kind": kind,
            "name": None,
            "view_radius_m": rng.uniform(*CAMERA_RADIUS_M, len(pick)).round(0),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "block": block[pick],
        }
    )


def roads(layout: Layout) -> pd.DataFrame:
    """One road segment per block edge: ``name, kind, line`` (LineString, metres)."""
    e = layout.road_edges
    return pd.DataFrame(
        {
            "name": np.asarray(layout.road_name)[layout.edge_line[e]],
            "kind": np.asarray(layout.road_kind)[layout.edge_line[e]],
            "line": shapely.linestrings(layout.edge_coords[e]),
        }
    )
