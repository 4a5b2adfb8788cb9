"""Staff (grid workers and support roles) and their grid assignments.

One grid worker per grid; per community a supervisor, a fire-safety officer and a monitor;
a grid police officer per :data:`GRIDS_PER_POLICE` grids; volunteers and a building head in
every grid. Names and phone numbers are fictional.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loaders.demo import names
from loaders.demo.territory import Territory

GRIDS_PER_POLICE = 4
VOLUNTEERS_PER_GRID = 2
#: Code prefix of each role (staff codes look like ``370214900WG0001``).
ROLE_PREFIX = {
    "grid_worker": "WG",
    "supervisor": "DD",
    "police": "JY",
    "firefighter": "XF",
    "monitor": "JD",
    "volunteer": "GY",
    "building_head": "LD",
}
#: Staff joined between these dates (all before the generated periods).
JOINED = (dt.date(2018, 3, 1), dt.date(2025, 6, 30))
#: Share of volunteers without a phone on file.
VOLUNTEER_NO_PHONE = 0.1


@dataclass
class People:
    """``staff`` and ``staff_assignment`` frames (schema columns) and the grid worker of
    each grid (``worker_of_grid``, staff ids in grid row order)."""

    staff: pd.DataFrame
    staff_assignment: pd.DataFrame
    worker_of_grid: np.ndarray


def build_people(territory: Territory, cfg: dict, rng: np.random.Generator) -> People:
    """Staff and assignments for every street of the territory."""
    grid = territory.grid
    members: list[tuple[str, str, list[int]]] = []  # (role, street, grid rows)
    for g in range(len(grid)):
        members.append(("grid_worker", grid.street_code[g], [g]))
    for c_code in territory.community["code"]:
        rows = np.flatnonzero(grid["community_code"].to_numpy() == c_code).tolist()
        street = grid.street_code[rows[0]]
        members += [(r, street, rows) for r in ("supervisor", "firefighter", "monitor")]
    for s_code in territory.street["code"]:
        in_street = np.flatnonzero(grid["street_code"].to_numpy() == s_code).tolist()
        for k in range(0, len(in_street), GRIDS_PER_POLICE):
            members.append(("police", s_code, in_street[k : k + GRIDS_PER_POLICE]))
    for g in range(len(grid)):
        members += [("volunteer", grid.street_code[g], [g])] * VOLUNTEERS_PER_GRID
        members.append(("building_head", grid.street_code[g], [g]))
    members.sort(key=lambda m: (m[1], list(ROLE_PREFIX).index(m[0])))

    n = len(members)
    role = np.array([m[0] for m in members])
    street = np.array([m[1] for m in members])
    seq = pd.Series(np.ones(n, dtype=int)).groupby([street, role]).cumsum().to_numpy()
    prefix = pd.Series(role).map(ROLE_PREFIX).to_numpy()
    code = [f"{s[:9]}{p}{k:04d}" for s, p, k in zip(street, prefix, seq, strict=True)]
    span = (JOINED[1] - JOINED[0]).days
    joined = [JOINED[0] + dt.timedelta(days=int(d)) for d in rng.integers(0, span, n)]
    phone = names.phones(n, rng).astype(object)
    phone[(role == "volunteer") & (rng.random(n) < VOLUNTEER_NO_PHONE)] = None
    staff = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "code": code,
            "name": names.person_names(n, rng),
            "role": role,
            "phone": phone,
            "street_code": street,
            "active_from": joined,
            "active_to": None,
        }
    )
    grid_from = dt.date.fromisoformat(cfg["grid_valid_from"])
    a_staff = np.repeat(staff["id"].to_numpy(), [len(m[2]) for m in members])
    a_grid = np.concatenate([m[2] for m in members]).astype(int)
    a_from = np.repeat([max(j, grid_from) for j in joined], [len(m[2]) for m in members])
    assignment = pd.DataFrame(
        {
            "id": np.arange(1, len(a_staff) + 1),
            "staff_id": a_staff,
            "grid_code": grid["code"].to_numpy()[a_grid],
            "street_code": grid["street_code"].to_numpy()[a_grid],
            "role": np.repeat(role, [len(m[2]) for m in members]),
            "valid_from": a_from,
            "valid_to": None,
        }
    )
    workers = assignment[assignment.role == "grid_worker"]
    worker_of_grid = np.zeros(len(grid), dtype=int)
    row_of_code = pd.Series(np.arange(len(grid)), index=grid["code"])
    worker_of_grid[row_of_code[workers.grid_code].to_numpy()] = workers.staff_id.to_numpy()
    return People(staff, assignment, worker_of_grid)
