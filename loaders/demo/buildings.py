"""Buildings along the block edges, and the housing units inside them.

Buildings stand in rows parallel to each block edge, set back from the road, so a grid
worker walking the block's roads passes within :data:`MAX_ROAD_DISTANCE_M` of every
building. Candidate rectangles that would leave their block (with a margin) or touch a
neighbour are dropped, so footprints never overlap and never lie on a grid edge.
Housing units carry resident counts by category only: no resident is ever named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from loaders.demo.layout import Layout

#: Largest distance of a building's centre from the road it faces.
MAX_ROAD_DISTANCE_M = 48.0
#: Footprints keep at least this far inside their block (never on a grid edge).
BLOCK_MARGIN_M = 3.0
#: Smallest clear distance between two footprints.
MIN_SPACING_M = 2.5
#: Building slots tried along one road segment.
SLOTS_PER_SEGMENT = 6

#: Urban building types: share, use, floors range, stairwells range, units per floor range.
URBAN_TYPES = (
    # name, share, use, floors, stairwells, units per floor per stairwell
    ("low_rise", 0.552, "residential", (1, 3), (1, 1), (1, 1)),
    ("six_storey", 0.10, "residential", (5, 7), (1, 2), (2, 2)),
    ("high_rise", 0.008, "residential", (18, 33), (1, 1), (2, 4)),
    ("mixed", 0.08, "mixed", (2, 6), (1, 1), (1, 2)),
    ("commercial", 0.12, "commercial", (1, 4), (1, 1), (1, 2)),
    ("office", 0.04, "office", (4, 12), (1, 1), (1, 1)),
    ("public", 0.035, "public", (2, 5), (1, 1), (1, 1)),
    ("industrial", 0.025, "industrial", (1, 2), (1, 1), (1, 1)),
    ("other", 0.018, "other", (1, 2), (1, 1), (1, 1)),
)
#: Village houses: one or two floors, one household.
VILLAGE_TYPE = ("village", 1.0, "residential", (1, 2), (1, 1), (1, 1))

#: Housing use of units by building use (mixed: ground floor business, flats above).
HOUSING_USE = {
    "residential": "residential",
    "commercial": "commercial",
    "office": "office",
    "public": "other",
    "industrial": "other",
    "other": "other",
}

#: Registered residents of an owner-occupied flat: values and probabilities.
HOUSEHOLD_SIZE = (np.arange(1, 7), np.array([0.18, 0.30, 0.27, 0.15, 0.07, 0.03]))


def place_buildings(
    layout: Layout, village: np.ndarray, cfg: dict, rng: np.random.Generator
) -> pd.DataFrame:
    """Building footprints (metres) with their block, facing road and attributes.

    ``village`` marks the village blocks, where houses are small and low.

    Returns
    -------
    pandas.DataFrame
        One row per building: ``footprint`` (shapely), ``x``, ``y`` (centroid), ``block``,
        ``edge``, ``side`` (0: block left of the road's direction), ``along`` (position on
        the road), ``floors``, ``use``, ``stairs``, ``per_floor``, ``village``.
    """
    seg = _segments(layout, village)
    rect = _candidates(seg, cfg, rng)
    inner = shapely.buffer(layout.block_poly, -BLOCK_MARGIN_M)
    ok = shapely.within(rect["poly"], inner[rect["block"]])
    rect = {k: v[ok] for k, v in rect.items()}
    tree = shapely.STRtree(rect["poly"])
    i, j = tree.query(rect["poly"], predicate="dwithin", distance=MIN_SPACING_M)
    clash = np.unique(np.maximum(i, j)[i != j])
    keep = np.ones(len(rect["poly"]), dtype=bool)
    keep[clash] = False
    b = pd.DataFrame({k: v[keep] for k, v in rect.items() if k != "poly"})
    b["footprint"] = rect["poly"][keep]
    centre = shapely.get_coordinates(shapely.centroid(b["footprint"].to_numpy()))
    b["x"], b["y"] = centre[:, 0], centre[:, 1]
    b["village"] = village[b["block"].to_numpy()]
    _attributes(b, rng)
    return b.reset_index(drop=True)


def _segments(layout: Layout, village: np.ndarray) -> dict[str, np.ndarray]:
    """Every half of every block's half-edges, with the inward normal (blocks are
    counter-clockwise, so the inside is on the left)."""
    sizes = [len(h) for h in layout.block_halfedges]
    hes = np.vstack(layout.block_halfedges)
    coords = layout.halfedge_coords(hes)
    p0 = coords[:, :2].reshape(-1, 2)
    p1 = coords[:, 1:].reshape(-1, 2)
    d = p1 - p0
    length = np.linalg.norm(d, axis=1)
    t = d / length[:, None]
    return {
        "p0": p0,
        "t": t,
        "n": np.stack([-t[:, 1], t[:, 0]], axis=1),
        "len": length,
        "block": np.repeat(np.repeat(np.arange(len(sizes)), sizes), 2),
        "edge": np.repeat(hes[:, 0], 2),
        "side": np.repeat(hes[:, 1], 2),
        "village": np.repeat(np.repeat(village, sizes), 2),
    }


def _candidates(seg: dict, cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rectangles in one or two rows along each segment (before clash removal)."""
    n_seg = len(seg["len"])
    village = seg["village"]
    scale = np.where(village, 0.55, 1.0)[:, None]
    width = rng.uniform(*cfg["building_width_m"], (n_seg, SLOTS_PER_SEGMENT)) * scale
    gap = rng.uniform(*cfg["building_gap_m"], (n_seg, SLOTS_PER_SEGMENT))
    start = rng.uniform(0, cfg["building_gap_m"][1], (n_seg, 1))
    end = start + np.cumsum(width + gap, axis=1) - gap
    centre = end - width / 2
    fits = end <= seg["len"][:, None]
    depth1 = rng.uniform(*cfg["building_depth_m"], n_seg) * scale[:, 0]
    set1 = rng.uniform(*cfg["setback_m"], n_seg)
    set1 = np.minimum(set1, MAX_ROAD_DISTANCE_M - depth1 / 2)
    depth2 = rng.uniform(*cfg["building_depth_m"], n_seg) * scale[:, 0]
    set2 = set1 + depth1 + rng.uniform(6.0, 12.0, n_seg)
    second = (rng.random(n_seg) < cfg["second_row_share"]) & (
        set2 + depth2 / 2 <= MAX_ROAD_DISTANCE_M
    )
    rows = [(np.ones(n_seg, bool), set1, depth1), (second, set2, depth2)]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("poly", "block", "edge", "side", "along")}
    for row_ok, setback, depth in rows:
        wobble = rng.uniform(-1.0, 1.0, (n_seg, SLOTS_PER_SEGMENT))
        mask = fits & row_ok[:, None]
        s_idx, k_idx = np.nonzero(mask)
        along = centre[s_idx, k_idx]
        off = setback[s_idx] + depth[s_idx] / 2 + wobble[s_idx, k_idx]
        c = seg["p0"][s_idx] + seg["t"][s_idx] * along[:, None] + seg["n"][s_idx] * off[:, None]
        parts["poly"].append(
            _rectangles(c, seg["t"][s_idx], width[s_idx, k_idx] / 2, depth[s_idx] / 2)
        )
        parts["block"].append(seg["block"][s_idx])
        parts["edge"].append(seg["edge"][s_idx])
        parts["side"].append(seg["side"][s_idx])
        parts["along"].append(along)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _rectangles(
    centre: np.ndarray, t: np.ndarray, half_w: np.ndarray, half_d: np.ndarray
) -> np.ndarray:
    """Rotated rectangles: ``half_w`` along the unit vector ``t``, ``half_d`` across."""
    n = np.stack([-t[:, 1], t[:, 0]], axis=1)
    u = t * half_w[:, None]
    v = n * half_d[:, None]
    corners = np.stack([centre - u - v, centre + u - v, centre + u + v, centre - u + v], axis=1)
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    return shapely.polygons(ring)


def _attributes(b: pd.DataFrame, rng: np.random.Generator) -> None:
    """Type, use, floors and unit layout of each building, in place."""
    n = len(b)
    types = URBAN_TYPES
    share = np.array([t[1] for t in types])
    kind = rng.choice(len(types), size=n, p=share / share.sum())
    # The widest urban footprints become the high-rises (towers need room).
    area = shapely.area(b["footprint"].to_numpy())
    high = next(k for k, t in enumerate(types) if t[0] == "high_rise")
    n_high = int((kind == high).sum())
    kind[kind == high] = next(k for k, t in enumerate(types) if t[0] == "six_storey")
    urban_idx = np.flatnonzero(~b["village"].to_numpy())
    top = urban_idx[np.argsort(-area[urban_idx], kind="stable")[: n_high * 3]]
    kind[rng.choice(top, size=min(n_high, len(top)), replace=False)] = high
    table = [*types, VILLAGE_TYPE]
    kind[b["village"].to_numpy()] = len(types)
    lo = np.array([[t[3][0], t[4][0], t[5][0]] for t in table])
    hi = np.array([[t[3][1], t[4][1], t[5][1]] for t in table])
    draw = rng.integers(lo[kind], hi[kind] + 1)
    b["type"] = np.array([t[0] for t in table])[kind]
    b["use"] = np.array([t[2] for t in table])[kind]
    b["floors"] = draw[:, 0]
    b["stairs"] = draw[:, 1]
    b["per_floor"] = draw[:, 2]
    six = b["type"].to_numpy() == "six_storey"
    b.loc[six, "floors"] = np.where(rng.random(six.sum()) < 0.7, 6, b.loc[six, "floors"])


def housing_units(b: pd.DataFrame, cfg: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Housing units of every building with occupancy and resident counts.

    Multi-storey residential buildings get ``stair-floor+room`` numbers (``"2-301"``);
    other buildings number their units ``"1"``, ``"2"``…; low-rise and non-residential
    buildings hold a few units each.
    """
    floors = b["floors"].to_numpy()
    stairs = b["stairs"].to_numpy()
    per_floor = b["per_floor"].to_numpy()
    flats = b["type"].isin(["six_storey", "high_rise", "mixed"]).to_numpy()
    small = np.where(
        b["use"].to_numpy() == "residential",
        rng.choice([1, 2, 3], size=len(b), p=[0.55, 0.35, 0.10]),
        rng.choice([1, 2, 3], size=len(b), p=[0.6, 0.3, 0.1]),
    )
    count = np.where(flats, floors * stairs * per_floor, small)
    bi = np.repeat(np.arange(len(b)), count)
    k = np.arange(len(bi)) - np.repeat(np.cumsum(count) - count, count)
    per_stair = floors[bi] * per_floor[bi]
    stair = k // np.maximum(per_stair, 1) + 1
    within = k % np.maximum(per_stair, 1)
    fl = within // per_floor[bi] + 1
    room = within % per_floor[bi] + 1
    flat_no = np.char.add(
        np.char.add(stair.astype(str), "-"),
        np.char.add(fl.astype(str), np.char.zfill(room.astype(str), 2)),
    )
    unit_no = np.where(flats[bi], flat_no, (k + 1).astype(str))
    use = pd.Series(b["use"].to_numpy()[bi]).map(HOUSING_USE | {"mixed": "residential"})
    ground_shop = (b["use"].to_numpy()[bi] == "mixed") & (fl == 1)
    use = np.where(ground_shop, "commercial", use.to_numpy())
    village = b["village"].to_numpy()[bi]
    u = pd.DataFrame({"building": bi, "unit_no": unit_no, "use": use})
    _occupancy(u, village, cfg, rng)
    return u


def _occupancy(u: pd.DataFrame, village: np.ndarray, cfg: dict, rng: np.random.Generator) -> None:
    """Occupancy, resident counts and care-group counts, in place (consistent with the
    schema: vacant units are empty, category counts never exceed the residents)."""
    n = len(u)
    resid = u["use"].to_numpy() == "residential"
    p_vac, p_rent, p_lent = cfg["vacant_share"], cfg["rented_share"], cfg["lent_share"]
    p_rent_unit = np.where(resid, p_rent * np.where(village, 1.4, 1.0), 0.6)
    draw = rng.random(n)
    occ = np.full(n, "owner", dtype=object)
    occ[draw < p_vac + p_rent_unit + p_lent] = "lent"
    occ[draw < p_vac + p_rent_unit] = "rented"
    occ[draw < p_vac] = "vacant"
    occ[~resid & (occ == "lent")] = "owner"
    size = rng.choice(HOUSEHOLD_SIZE[0], size=n, p=HOUSEHOLD_SIZE[1])
    floating_rent = rng.integers(1, 5, n) + np.where(village, rng.integers(0, 3, n), 0)
    reg = np.select(
        [occ == "owner", occ == "rented", occ == "lent"],
        [size, np.where(rng.random(n) < 0.25, rng.integers(1, 3, n), 0), rng.integers(0, 3, n)],
        0,
    )
    flo = np.select(
        [occ == "owner", occ == "rented", occ == "lent"],
        [
            np.where(rng.random(n) < 0.08, rng.integers(1, 3, n), 0),
            floating_rent,
            rng.integers(1, 4, n),
        ],
        0,
    )
    business = ~resid & (occ != "vacant")
    reg = np.where(business, 0, reg)
    flo = np.where(business, np.where(rng.random(n) < 0.3, rng.integers(1, 3, n), 0), flo)
    total = reg + flo
    occupied = (occ != "vacant") & resid & (total > 0)
    alone = occupied & (reg == 1) & (flo == 0) & (occ == "owner") & (rng.random(n) < 0.22)
    u["occupancy"] = occ.astype(str)
    u["n_registered"] = reg
    u["n_floating"] = flo
    u["n_elderly_alone"] = alone.astype(int)
    u["n_low_income"] = np.where(
        occupied & (rng.random(n) < 0.025), np.minimum(total, rng.integers(1, 4, n)), 0
    )
    u["n_disabled"] = np.where(occupied & (rng.random(n) < 0.03), 1, 0)
    u["n_veterans"] = np.where(occupied & (reg > 0) & (rng.random(n) < 0.03), 1, 0)
    u["n_party_members"] = np.where(
        occupied & (reg > 0) & (rng.random(n) < 0.12), np.minimum(reg, rng.integers(1, 3, n)), 0
    )


def special_counts(u: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Sparse counts of the sensitive special groups: only the few occupied residential
    units that have any, with small counts. Index: positions in ``u``."""
    occupied = (u["n_registered"] + u["n_floating"] > 0) & (u["use"] == "residential")
    pick = np.flatnonzero(occupied.to_numpy() & (rng.random(len(u)) < SPECIAL_SHARE))
    cols = [
        "n_released_prisoners",
        "n_community_correction",
        "n_drug_users",
        "n_severe_mental_illness",
        "n_key_youth",
    ]
    counts = np.zeros((len(pick), len(cols)), dtype=int)
    which = rng.choice(len(cols), size=len(pick), p=SPECIAL_MIX)
    counts[np.arange(len(pick)), which] = np.where(rng.random(len(pick)) < 0.9, 1, 2)
    s = pd.DataFrame(counts, columns=cols)
    s.insert(0, "unit", pick)
    return s


#: Share of occupied residential units with any special-group count.
SPECIAL_SHARE = 0.012
#: Mix of the special groups (released, correction, drugs, mental illness, key youth).
SPECIAL_MIX = np.array([0.25, 0.15, 0.15, 0.25, 0.20])
