"""Work logs (民情日志 / 工作日志) of the grid workers.

Quota: :data:`urban_per_week` entries a week in urban (community) grids and
:data:`village_per_week` in village grids; a few workers fall below quota (planted). Entries
are short template sentences about the worker's own grid; they never name residents.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from loaders.demo.incidents import DAY, SHANGHAI_OFFSET_S, period_bounds
from loaders.demo.territory import Territory
from store import workcal

#: Sentence parts of a log entry: what was done, where, what was found, what followed.
ACTIONS = ("走访", "入户走访", "巡查", "回访", "排查", "宣传", "登记")
FINDINGS = (
    "了解居民生活情况，未发现异常",
    "发现楼道杂物堆放，已提醒清理",
    "宣传防诈骗知识，发放资料若干份",
    "排查电动车违规充电，已劝导整改",
    "核对实有人口信息，更新出租房屋登记",
    "看望独居老人，身体状况良好",
    "调解邻里噪声纠纷，双方达成谅解",
    "检查消防通道，保持畅通",
    "收集居民对停车问题的意见建议",
    "排查安全隐患，未发现新问题",
    "协助社区开展环境卫生整治",
    "宣传垃圾分类政策，居民反响良好",
)
FOLLOW_UPS = ("", "将持续跟进。", "已录入系统。", "已向社区报告。", "下周回访。")


def generate_work_logs(
    territory: Territory,
    worker_of_grid: np.ndarray,
    staff_code: np.ndarray,
    addresses: pd.DataFrame,
    cfg: dict,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict]:
    """Log entries of every grid worker over ``work_log_days``, with truth on quotas.

    ``addresses`` holds the buildings' ``grid_code`` and ``address`` (places the logs
    mention; each entry names a random building of the worker's grid).
    """
    wc = cfg["work_logs"]
    start, _ = period_bounds(
        dt.date.fromisoformat(cfg["period_end"]), cfg["work_log_days"], cfg["timezone"]
    )
    first = (start + SHANGHAI_OFFSET_S) // DAY
    dates = np.arange(first, first + cfg["work_log_days"]).astype("datetime64[D]")
    work = dates[np.isin(dates, workcal.add_working_days(dates - 1, 1))]
    week = (work.astype(np.int64) + 3) // 7  # weeks start on Monday
    n_grid = len(territory.grid)
    quota = np.where(
        territory.grid["kind"].to_numpy() == "village", wc["village_per_week"], wc["urban_per_week"]
    )
    below = rng.choice(n_grid, size=wc["below_quota_workers"], replace=False)
    target = quota.copy()
    target[below] = np.maximum(quota[below] - rng.integers(2, 4, len(below)), 1)

    g = np.repeat(np.arange(n_grid), len(work))
    day = np.tile(work, n_grid)
    wk = np.tile(week, n_grid)
    key = rng.random(len(g))
    rank = pd.Series(key).groupby([g, wk]).rank(method="first").to_numpy()
    extra = rng.random(len(g)) < 0.05  # now and then one more than required
    keep = rank <= target[g] + extra
    g, day = g[keep], day[keep]
    n = len(g)
    action = np.asarray(ACTIONS)[rng.integers(len(ACTIONS), size=n)]
    finding = np.asarray(FINDINGS)[rng.integers(len(FINDINGS), size=n)]
    follow = np.asarray(FOLLOW_UPS)[rng.integers(len(FOLLOW_UPS), size=n)]
    by_grid = addresses.sort_values("grid_code", kind="stable")
    codes = territory.grid["code"].to_numpy()
    first_row = np.searchsorted(by_grid["grid_code"].to_numpy(), codes)
    count = np.searchsorted(by_grid["grid_code"].to_numpy(), codes, side="right") - first_row
    pick = first_row[g] + (rng.random(n) * np.maximum(count[g], 1)).astype(int)
    place = np.where(
        count[g] > 0,
        by_grid["address"].to_numpy()[np.minimum(pick, len(by_grid) - 1)],
        territory.grid["name"].to_numpy()[g],
    )
    body = (
        pd.Series(action) + pd.Series(place) + "，" + pd.Series(finding) + "。" + pd.Series(follow)
    )
    kind = np.where(rng.random(n) < wc["work_share"], "work", "public_sentiment")
    logs = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "worker_id": worker_of_grid[g],
            "log_date": pd.Series(day).dt.date.to_numpy(),
            "kind": kind,
            "grid_code": territory.grid["code"].to_numpy()[g],
            "street_code": territory.grid["street_code"].to_numpy()[g],
            "body": body.to_numpy(),
        }
    )
    truth = {
        "quota_per_week": {"urban": wc["urban_per_week"], "village": wc["village_per_week"]},
        "below_quota_workers": sorted(str(staff_code[worker_of_grid[b]]) for b in below),
    }
    return logs, truth
