"""Fictional Chinese names: communities, roads, staff, places.

All names are drawn from small character lists with the shared random generator, so they
are plausible, reproducible and belong to nobody. No resident is ever named.
"""

from __future__ import annotations

import numpy as np

#: Two-character place stems for communities and key places (桃源, 春阳…).
# fmt: off
PLACE_STEMS = (
    "桃源", "春阳", "福山", "安居", "和平", "明珠", "康乐", "青松", "翠湖", "金桥", "幸福", "兴隆",
    "嘉禾", "锦绣", "瑞祥", "鹤山", "东风", "新华", "友谊", "龙泉", "海棠", "紫荆", "丰收", "滨河",
    "阳光", "长乐", "南岭", "北苑", "西园", "东篱", "银杏", "梧桐", "清溪", "玉兰", "永安", "泰和",
    "富民", "春晖", "秋实", "文昌", "启明", "望海", "听涛", "观澜", "凤鸣", "云台", "石桥", "柳岸",
    "荷塘", "杏林", "竹园", "松涛", "梅岭", "兰亭", "菊香", "芙蓉", "樱花", "枫林", "晨光", "朝阳",
    "夕照", "星河", "月湖", "宝山", "金沙", "银河", "碧波", "绿洲", "红星", "白鹭", "青云", "紫霞",
    "黄河", "长江", "珠江", "淮海", "汇泉", "太平",
)
# fmt: on

#: First characters of road names; combined with :data:`ROAD_SECOND` and a suffix.
ROAD_FIRST = tuple("春秋华兴长永安和康宁泰福瑞祥嘉富丰鸿海江河湖山松柏桃李杏梅兰竹菊云星")
ROAD_SECOND = tuple("阳明光华新兴盛平顺通达远泉林园源城岭峰湾")
ROAD_SUFFIX = {"main": "路", "secondary": "街", "lane": "巷"}

SURNAMES = tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡")
GIVEN_CHARS = tuple("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文海波宁鹏飞晓琳")


def community_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct community names such as ``"桃源社区"``."""
    stems = _distinct(PLACE_STEMS, n, rng)
    return [f"{s}社区" for s in stems]


def road_names(kinds: list[str], rng: np.random.Generator) -> list[str]:
    """One distinct road name per entry of ``kinds`` (main → 路, secondary → 街, lane → 巷)."""
    pairs = [a + b for a in ROAD_FIRST for b in ROAD_SECOND if a != b]
    if len(kinds) > len(pairs):
        raise ValueError(f"only {len(pairs)} road names available, {len(kinds)} asked")
    chosen = rng.choice(len(pairs), size=len(kinds), replace=False)
    return [pairs[i] + ROAD_SUFFIX[k] for i, k in zip(chosen, kinds, strict=True)]


def person_names(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` fictional personal names (surname + one or two given characters), for staff."""
    sur = np.asarray(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.asarray(GIVEN_CHARS)[rng.integers(0, len(GIVEN_CHARS), n)]
    g2 = np.asarray(GIVEN_CHARS)[rng.integers(0, len(GIVEN_CHARS), n)]
    two = rng.random(n) < 0.6
    return np.where(two, np.char.add(np.char.add(sur, g1), g2), np.char.add(sur, g1))


def phones(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct fictional mobile numbers matching ``^1[3-9]\\d{9}$``.

    The 170/171 prefixes belong to virtual operators, so the numbers look real but are
    unlikely to reach anyone."""
    prefix = np.where(rng.random(n) < 0.5, "170", "171")
    tail = rng.choice(100_000_000, size=n, replace=False)
    return np.char.add(prefix, np.char.zfill(tail.astype(str), 8))


def place_stems(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` place stems, repeating only when more are asked than exist."""
    idx = rng.integers(0, len(PLACE_STEMS), n)
    return [PLACE_STEMS[i] for i in idx]


def _distinct(pool: tuple[str, ...] | list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct entries of ``pool``, numbered (``"桃源二"``) once the pool runs out."""
    out: list[str] = []
    round_no = 0
    while len(out) < n:
        take = min(n - len(out), len(pool))
        picks = rng.choice(len(pool), size=take, replace=False)
        suffix = "" if round_no == 0 else _ORDINALS[round_no % len(_ORDINALS)]
        out += [pool[i] + suffix for i in picks]
        round_no += 1
    return out


_ORDINALS = ("", "二", "三", "四", "五", "六", "七", "八", "九")
