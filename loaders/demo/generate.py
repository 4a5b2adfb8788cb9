"""Orchestration: run the generator modules in order and turn their metric results into
the schema's frames (EPSG:4490, tz-aware, explicit ids).

The world (layout, buildings, territory, people, places, facilities) and then the incidents
are drawn in order from one random generator; the patrols and the work logs each draw from
a stream of their own (:data:`STREAMS`), so changing what is planted among the incidents
(how many, where) never moves the patrols, their planted truth or the work logs."""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from loaders.demo import buildings as bld
from loaders.demo.geom import locate, points_to_storage, to_metric, to_storage
from loaders.demo.incidents import generate_incidents
from loaders.demo.layout import build_layout, village_blocks
from loaders.demo.model import DemoData
from loaders.demo.patrols import generate_patrols
from loaders.demo.people import build_people
from loaders.demo.places import NIGHTLIFE_VENUES, choose_anchors, facilities, key_places, roads
from loaders.demo.territory import build_territory
from loaders.demo.worklogs import generate_work_logs
from store.crs import STORAGE_EPSG
from store.settings import PROJECT_ROOT

SETTINGS_TOML = PROJECT_ROOT / "data" / "demo.toml"
#: Village patches on the outskirts: one per this many village grids.
VILLAGE_GRIDS_PER_ZONE = 10
#: How far from its anchor an emerging pattern's junction may be, metres (well under
#: half the anchors' separation, so patterns stay apart).
JUNCTION_REACH_M = 250.0
#: Independent random streams of the stages after the incidents: child ``k`` of the seed's
#: :class:`numpy.random.SeedSequence` (the main generator is its root, which no child's
#: stream overlaps).
STREAMS = {"patrols": 0, "work_logs": 1}
#: Facility code infix by kind.
FACILITY_PREFIX = {
    "camera_tianwang": "TW",
    "camera_xueliang": "XL",
    "hydrant": "XH",
    "emergency_supply": "YJ",
}


def load_profile(scale: str, path: Path = SETTINGS_TOML) -> dict:
    """Settings of one profile: ``[common]`` deep-merged with ``[scale]``."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    if scale not in raw or scale == "common":
        profiles = sorted(k for k in raw if k != "common")
        raise ValueError(f"unknown scale {scale!r}; choose one of {profiles}")
    return _merge(raw["common"], raw[scale])


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def generate(seed: int, scale: str = "street") -> DemoData:
    """Generate the demo data set.

    Parameters
    ----------
    seed
        Seed of the random generators (PCG64): the main one, for the world and the
        incidents, and the streams of :data:`STREAMS` spawned from the same seed.
    scale
        ``"street"`` (one street, 41 grids, one year) or ``"district"`` (12 streets,
        ~1,500 grids, three years of incidents; for benchmarks).

    Returns
    -------
    DemoData
        One frame per table and the planted truth.
    """
    cfg = load_profile(scale)
    rng = np.random.Generator(np.random.PCG64(seed))
    epsg = cfg["metric_epsg"]
    origin = to_metric(cfg["centre_lon"], cfg["centre_lat"], epsg)

    layout = build_layout(cfg, origin, rng)
    n_zones = max(1, cfg["village_grids"] // VILLAGE_GRIDS_PER_ZONE)
    village = village_blocks(layout, cfg["village_grids"] / cfg["grids"], n_zones, rng)
    b = bld.place_buildings(layout, village, cfg, rng)
    units = bld.housing_units(b, cfg, rng)
    occupied = ((units["use"] == "residential") & (units["occupancy"] != "vacant")).to_numpy()
    households = np.bincount(
        b["block"].to_numpy()[units["building"].to_numpy()[occupied]], minlength=layout.n_blocks
    )
    territory = build_territory(layout, village, households, cfg, rng)
    people = build_people(territory, cfg, rng)
    anchors = choose_anchors(layout, village, rng)
    places = key_places(layout, territory, anchors, cfg, rng)
    fac = facilities(layout, territory, cfg, rng)

    building = _building_frame(b, layout, territory)
    housing, special = _housing_frames(units, building, cfg, rng)
    staff_code = np.r_[[""], people.staff["code"].to_numpy()].astype(object)

    centres = _centres(places, layout, territory, anchors)
    lon, lat = points_to_storage(*np.array(list(centres.values())).T, epsg).pipe(
        lambda s: (s.x.to_numpy(), s.y.to_numpy())
    )
    centres_ll = {
        k: (round(float(a), 7), round(float(c), 7))
        for k, a, c in zip(centres, lon, lat, strict=True)
    }
    ctx = {
        "grid": territory.grid,
        "grid_poly": territory.grid["poly"].to_numpy(),
        "district_poly": territory.district,
        "street": territory.street,
        "community": territory.community,
        "buildings": pd.DataFrame(
            {
                "x": b["x"],
                "y": b["y"],
                "address": building["address"].to_numpy(),
                "weight": np.bincount(units["building"], minlength=len(b)) + 1.0,
            }
        ),
        "centres": centres,
        "centres_lonlat": centres_ll,
        "hotspot_sigma_m": cfg["incidents"]["hotspot_sigma_m"],
        "rising_sigma_m": cfg["incidents"]["rising_sigma_m"],
        "new_spot_sigma_m": cfg["incidents"]["new_spot_sigma_m"],
        "worker_of_grid": people.worker_of_grid,
        "staff_code": staff_code,
        "timezone": cfg["timezone"],
    }
    inc = generate_incidents(ctx, cfg, rng)
    stream = _streams(seed)
    pat = generate_patrols(
        layout, territory, people.worker_of_grid, staff_code, cfg, stream["patrols"]
    )
    logs, log_truth = generate_work_logs(
        territory,
        people.worker_of_grid,
        staff_code,
        building[["grid_code", "address"]],
        cfg,
        stream["work_logs"],
    )

    grid = territory.grid
    grid_frame = _gdf(
        pd.DataFrame(
            {
                "code": grid["code"],
                "name": grid["name"],
                "kind": grid["kind"],
                "community_code": grid["community_code"],
                "households": grid["households"],
                "worker_id": people.worker_of_grid,
                "valid_from": dt.date.fromisoformat(cfg["grid_valid_from"]),
                "valid_to": None,
            }
        ),
        to_storage(grid["poly"].to_numpy(), epsg),
    )
    data = DemoData(
        admin_unit=_admin_frame(territory, cfg),
        staff=people.staff,
        grid=grid_frame,
        staff_assignment=people.staff_assignment,
        building=_building_gdf(building, epsg),
        housing_unit=housing,
        housing_special_count=special,
        key_place=_places_frame(places, territory, building, b, epsg),
        facility=_facility_frame(fac, territory, epsg),
        road=_road_frame(layout, epsg),
        incident=_points_gdf(inc.incident.drop(columns=["pattern"]), epsg),
        incident_transition=inc.transition,
        patrol_fix=_points_gdf(pat.fix, epsg),
        patrol=_gdf(
            pat.patrol.drop(columns=["line"]), to_storage(pat.patrol["line"].to_numpy(), epsg)
        ),
        work_log=logs,
    )
    data.truth = _truth(
        data, seed, scale, cfg, inc.truth, pat.truth, log_truth, layout, building, territory, epsg
    )
    return data


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One generator per stage of :data:`STREAMS`, from the children of ``seed``'s seed
    sequence: independent of the main generator and of one another, and of how many numbers
    any other stage draws."""
    children = np.random.SeedSequence(seed).spawn(max(STREAMS.values()) + 1)
    return {name: np.random.Generator(np.random.PCG64(children[k])) for name, k in STREAMS.items()}


# --- frames ---------------------------------------------------------------------------------


def _building_frame(b: pd.DataFrame, layout, territory) -> pd.DataFrame:
    """Codes (``B<grid>-0001``), addresses (road name + house number, odd on one side)
    and schema columns of the buildings; rows ordered by code, ids from 1."""
    grid_row = territory.block_grid[b["block"].to_numpy()]
    edge = b["edge"].to_numpy()
    a = layout.edge_coords[edge, 0]
    c = layout.edge_coords[edge, 2]
    d = c - a
    t = ((b[["x", "y"]].to_numpy() - a) * d).sum(1) / (d * d).sum(1)
    line = layout.edge_line[edge]
    pos = layout.edge_pos[edge] + np.clip(t, 0, 1)
    side = b["side"].to_numpy()
    rank = pd.Series(pos).groupby([line, side]).rank(method="first").to_numpy().astype(int)
    number = 2 * rank - 1 + side
    road_name = np.asarray(layout.road_name)[line]
    address = pd.Series(road_name) + pd.Series(number).astype(str) + "号"
    frame = pd.DataFrame(
        {
            "grid_code": territory.grid["code"].to_numpy()[grid_row],
            "street_code": territory.grid["street_code"].to_numpy()[grid_row],
            "address": address.to_numpy(),
            "floors": b["floors"].to_numpy(),
            "use": b["use"].to_numpy(),
            "x": b["x"].to_numpy(),
            "y": b["y"].to_numpy(),
            "footprint": b["footprint"].to_numpy(),
            "src": np.arange(len(b)),
        }
    )
    frame = frame.sort_values(
        ["grid_code", "y", "x"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
    seq = frame.groupby("grid_code").cumcount() + 1
    frame.insert(0, "code", "B" + frame["grid_code"] + "-" + seq.map("{:04d}".format))
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    return frame


def _building_gdf(frame: pd.DataFrame, epsg: int) -> gpd.GeoDataFrame:
    """Building GeoDataFrame: ``geom`` the footprint centroid, ``footprint`` a
    MultiPolygon, both EPSG:4490; helper columns dropped."""
    polys = frame["footprint"].to_numpy()
    fp = to_storage(shapely.multipolygons(polys, indices=np.arange(len(polys))), epsg)
    out = _gdf(
        frame.drop(columns=["x", "y", "footprint", "src"]),
        points_to_storage(frame["x"].to_numpy(), frame["y"].to_numpy(), epsg),
    )
    out["footprint"] = fp.set_axis(out.index)
    return out


def _housing_frames(
    units: pd.DataFrame, building: pd.DataFrame, cfg: dict, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Housing units (ids from 1, in building order) and the sparse special counts."""
    by_src = building.set_index("src")
    units = (
        units.assign(
            building_id=by_src["id"].reindex(units["building"]).to_numpy(),
            grid_code=by_src["grid_code"].reindex(units["building"]).to_numpy(),
            street_code=by_src["street_code"].reindex(units["building"]).to_numpy(),
        )
        .sort_values(["building_id"], kind="stable")
        .reset_index(drop=True)
    )
    units.insert(0, "id", np.arange(1, len(units) + 1))
    special = bld.special_counts(units, rng)
    rows = special.pop("unit").to_numpy()
    end = dt.date.fromisoformat(cfg["period_end"])
    special.insert(0, "housing_unit_id", units["id"].to_numpy()[rows])
    special.insert(1, "grid_code", units["grid_code"].to_numpy()[rows])
    special.insert(2, "street_code", units["street_code"].to_numpy()[rows])
    special["updated_on"] = [
        end - dt.timedelta(days=int(d)) for d in rng.integers(0, 90, len(rows))
    ]
    cols = [
        "id",
        "building_id",
        "grid_code",
        "street_code",
        "unit_no",
        "use",
        "occupancy",
        "n_registered",
        "n_floating",
        "n_elderly_alone",
        "n_low_income",
        "n_disabled",
        "n_veterans",
        "n_party_members",
    ]
    return units[cols], special


def _centres(places: pd.DataFrame, layout, territory, anchors) -> dict[str, tuple[float, float]]:
    """Metric centres of the planted patterns, from the places anchored on them; the
    rising area and the new spot at a road junction near their anchor (the rising area's
    nearest the construction site), see :func:`_junction`."""

    def first(kind: str, k: int = 1) -> tuple[float, float]:
        rows = places[places["kind"] == kind].head(k)
        return float(rows["x"].mean()), float(rows["y"].mean())

    compound = shapely.centroid(layout.block_poly[anchors.blocks["old_compound"]])
    site = first("construction_site")
    return {
        "market": first("market"),
        "nightlife": first("entertainment", NIGHTLIFE_VENUES),
        "old_compound": (compound.x, compound.y),
        "rising": _junction(layout, territory, anchors.blocks["rising"], site),
        "new_spot": _junction(layout, territory, anchors.blocks["new_spot"]),
    }


def _junction(
    layout, territory, block: int, near: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The road junction within :data:`JUNCTION_REACH_M` of ``block`` (of ``near`` when
    given) whose surrounding grids hold the most households, the nearest among equals.

    Grids are balanced by households, so this is mostly the junction where the most grids
    meet, in a lived-in part of the area. An emerging pattern planted there spreads over
    the grids around the junction, which are all neighbours of one another: each one's
    Gi* neighbourhood holds the whole pattern while no single grid carries all of it, so
    the grid analysis sees it from its first months without that one grid's counts
    dominating the cube's variance (a pattern inside one grid must be several times
    larger to be significant there)."""
    if near is None:
        c = shapely.centroid(layout.block_poly[block])
        near = (c.x, c.y)
    grids_at: dict[int, set[int]] = {}
    for b, halves in enumerate(layout.block_halfedges):
        for v in np.unique(layout.edge_nodes[halves[:, 0]]):
            grids_at.setdefault(int(v), set()).add(int(territory.block_grid[b]))
    nodes = np.array(sorted(grids_at))
    d = np.hypot(*(layout.node_xy[nodes] - np.asarray(near)).T)
    close = np.flatnonzero(d <= JUNCTION_REACH_M)
    hh = territory.grid["households"].to_numpy()
    best = min(close, key=lambda k: (-hh[sorted(grids_at[int(nodes[k])])].sum(), d[k]))
    x, y = layout.node_xy[nodes[best]]
    return float(x), float(y)


def _places_frame(
    places: pd.DataFrame, territory, building: pd.DataFrame, b: pd.DataFrame, epsg: int
) -> gpd.GeoDataFrame:
    g = locate(places["x"].to_numpy(), places["y"].to_numpy(), territory.grid["poly"].to_numpy())
    tree = shapely.STRtree(shapely.points(building["x"].to_numpy(), building["y"].to_numpy()))
    near = tree.query_nearest(
        shapely.points(places["x"].to_numpy(), places["y"].to_numpy()), all_matches=False
    )[1]
    street = territory.grid["street_code"].to_numpy()[g]
    seq = pd.Series(np.ones(len(g), dtype=int)).groupby(street).cumsum().to_numpy()
    frame = pd.DataFrame(
        {
            "id": np.arange(1, len(g) + 1),
            "code": [f"K{s[:9]}{k:04d}" for s, k in zip(street, seq, strict=True)],
            "name": places["name"].to_numpy(),
            "kind": places["kind"].to_numpy(),
            "address": building["address"].to_numpy()[near],
            "grid_code": territory.grid["code"].to_numpy()[g],
            "street_code": street,
            "x": places["x"].to_numpy(),
            "y": places["y"].to_numpy(),
        }
    )
    return _points_gdf(frame, epsg)


def _facility_frame(fac: pd.DataFrame, territory, epsg: int) -> gpd.GeoDataFrame:
    g = locate(fac["x"].to_numpy(), fac["y"].to_numpy(), territory.grid["poly"].to_numpy())
    street = territory.grid["street_code"].to_numpy()[g]
    prefix = fac["kind"].map(FACILITY_PREFIX).to_numpy()
    seq = pd.Series(np.ones(len(g), dtype=int)).groupby([street, prefix]).cumsum().to_numpy()
    frame = pd.DataFrame(
        {
            "id": np.arange(1, len(g) + 1),
            "code": [f"F{s[:9]}{p}{k:04d}" for s, p, k in zip(street, prefix, seq, strict=True)],
            "kind": fac["kind"].to_numpy(),
            "name": fac["name"].to_numpy(),
            "view_radius_m": fac["view_radius_m"].to_numpy(),
            "grid_code": territory.grid["code"].to_numpy()[g],
            "street_code": street,
            "x": fac["x"].to_numpy(),
            "y": fac["y"].to_numpy(),
        }
    )
    return _points_gdf(frame, epsg)


def _road_frame(layout, epsg: int) -> gpd.GeoDataFrame:
    r = roads(layout)
    return _gdf(
        pd.DataFrame({"id": np.arange(1, len(r) + 1), "name": r["name"], "kind": r["kind"]}),
        to_storage(r["line"].to_numpy(), epsg),
    )


def _points_gdf(frame: pd.DataFrame, epsg: int) -> gpd.GeoDataFrame:
    """Replace metric ``x``/``y`` by a ``geom`` point column in EPSG:4490."""
    geom = points_to_storage(frame["x"].to_numpy(), frame["y"].to_numpy(), epsg)
    return _gdf(frame.drop(columns=["x", "y"]), geom)


def _gdf(frame: pd.DataFrame, geom: gpd.GeoSeries) -> gpd.GeoDataFrame:
    """``frame`` with ``geom`` (EPSG:4490) appended as its active geometry column."""
    out = frame.reset_index(drop=True)
    out["geom"] = geom.reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry="geom", crs=STORAGE_EPSG)


def _admin_frame(territory, cfg: dict) -> gpd.GeoDataFrame:
    epsg = cfg["metric_epsg"]
    t = territory
    rows = pd.DataFrame(
        {
            "code": [cfg["district_code"], *t.street["code"], *t.community["code"]],
            "level": ["district"] + ["street"] * len(t.street) + ["community"] * len(t.community),
            "name": [cfg["district_name"], *t.street["name"], *t.community["name"]],
            "parent_code": [None]
            + [cfg["district_code"]] * len(t.street)
            + list(t.community["street_code"]),
        }
    )
    polys = np.array([t.district, *t.street["poly"], *t.community["poly"]], dtype=object)
    return _gdf(rows, to_storage(polys, epsg))


# --- truth ----------------------------------------------------------------------------------


def _truth(
    data: DemoData,
    seed: int,
    scale: str,
    cfg: dict,
    inc: dict,
    pat: dict,
    logs: dict,
    layout,
    building: pd.DataFrame,
    territory,
    epsg: int,
) -> dict:
    """Everything planted and counted, as plain JSON values."""
    never = []
    for blk in pat.pop("never_visited_blocks"):
        poly = to_storage(np.array([layout.block_poly[blk]], dtype=object), epsg).iloc[0]
        inside = shapely.contains_xy(
            layout.block_poly[blk], building["x"].to_numpy(), building["y"].to_numpy()
        )
        # the roads nobody walks: every road touching one of the block's corners
        corners = layout.edge_nodes[layout.block_halfedges[blk][:, 0]].ravel()
        edges = np.flatnonzero(np.isin(layout.edge_nodes, corners).any(axis=1))
        unwalked = to_storage(
            np.array(
                [shapely.multilinestrings(shapely.linestrings(layout.edge_coords[edges]))],
                dtype=object,
            ),
            epsg,
        ).iloc[0]
        never.append(
            {
                "grid_code": territory.grid["code"].iloc[territory.block_grid[blk]],
                "wkt": shapely.to_wkt(poly, rounding_precision=9),
                "unwalked_roads_wkt": shapely.to_wkt(unwalked, rounding_precision=9),
                "building_codes": building.loc[inside, "code"].tolist(),
            }
        )
    pat["never_visited"] = never
    end = cfg["period_end"]
    return {
        "seed": seed,
        "scale": scale,
        "storage_epsg": STORAGE_EPSG,
        "metric_epsg": epsg,
        "timezone": cfg["timezone"],
        "period_end": end,
        "periods_days": {
            "incidents": cfg["incident_days"],
            "patrols": cfg["patrol_days"],
            "work_logs": cfg["work_log_days"],
        },
        "counts": {name: len(frame) for name, frame in data.tables()},
        "outside_incidents": inc["outside_street"],
        "incidents": inc,
        "patrols": pat,
        "work_logs": logs,
    }
