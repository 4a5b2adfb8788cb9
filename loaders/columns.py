"""Which column is which? Header recognition for tabular and vector inputs.

The store's column names (:mod:`store.models`) are the *canonical* field names. Real files
say ``经度``, ``LNG``, ``Longitude (°)``, ``网格编码`` or ``事件类型`` instead. This module maps
the headers of a file to canonical fields:

* :data:`HEADER_ALIASES` lists the headers recognised for each field, Chinese and English;
  matching ignores case, spaces, punctuation and full-width/half-width differences, and
  falls back to ignoring a bracketed unit or note (``精度(米)``, ``经度（GCJ-02）``).
* :func:`resolve_columns` maps the headers of one file for the fields a loader needs, and
  fails with a message that names each missing field in Chinese and English, lists the
  headers the file has, and says how to fix it (a mapping file).
* :func:`load_mapping` reads such a mapping file (JSON or TOML, canonical → header) for
  headers no alias covers.

Some words mean different fields in different kinds of file: ``网格编码`` is a grid file's own
``code`` but the ``grid_code`` of a building; ``街道编码`` is a community's ``parent_code``;
``状态`` in a transitions file is the ``to_status``. :data:`KIND_ALIASES` holds those per
loader kind and is tried first when :func:`resolve_columns` is given ``kind``; the generic
:data:`HEADER_ALIASES` never give one header to two fields.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from loaders.sniff import InputError

__all__ = [
    "FIELD_LABELS",
    "HEADER_ALIASES",
    "KIND_ALIASES",
    "AmbiguousColumnError",
    "ColumnError",
    "MappingError",
    "MissingColumnError",
    "load_mapping",
    "match_field",
    "normalise_header",
    "resolve_columns",
]

# canonical field -> (中文名, English name, recognised headers besides the field's own name)
_FIELDS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    # --- geometry
    "lon": (
        "经度",
        "longitude",
        ("经度", "经度坐标", "东经", "lng", "lon", "long", "longitude", "gps经度", "point_lng"),
    ),
    "lat": (
        "纬度",
        "latitude",
        ("纬度", "纬度坐标", "北纬", "lat", "latitude", "gps纬度", "point_lat"),
    ),
    "x": (
        "X坐标",
        "x coordinate",
        ("x", "x坐标", "横坐标", "easting", "point_x", "coord_x", "xcoord"),
    ),
    "y": (
        "Y坐标",
        "y coordinate",
        ("y", "y坐标", "纵坐标", "northing", "point_y", "coord_y", "ycoord"),
    ),
    "wkt": (
        "几何(WKT)",
        "geometry as WKT",
        ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "几何图形", "空间信息", "边界"),
    ),
    # --- codes and names
    "code": ("编码", "code", ("编码", "编号", "代码", "code", "id")),
    "name": (
        "名称",
        "name",
        (
            "名称",
            "名字",
            "姓名",
            "name",
            "区划名称",
            "道路名称",
        ),
    ),
    "kind": (
        "类型",
        "kind",
        (
            "类型",
            "种类",
            "kind",
            "type",
            "网格类型",
            "场所类型",
            "场所类别",
            "设施类型",
            "日志类型",
            "道路等级",
        ),
    ),
    "level": ("级别", "level", ("级别", "行政级别", "区划级别", "level", "admin_level")),
    "parent_code": (
        "上级编码",
        "parent code",
        ("上级编码", "上级代码", "上级区划代码", "parent_code", "parent", "parent_id"),
    ),
    "grid_code": (
        "网格编码",
        "grid code",
        (
            "网格编码",
            "网格代码",
            "网格编号",
            "所属网格",
            "所属网格编码",
            "网格",
            "grid_code",
            "gridcode",
            "grid",
            "grid_id",
            "grid_no",
        ),
    ),
    "street_code": (
        "街道编码",
        "street code",
        (
            "街道编码",
            "街道代码",
            "街道编号",
            "所属街道",
            "所属街道编码",
            "乡镇街道编码",
            "乡镇编码",
            "street_code",
            "street",
            "street_id",
            "town_code",
        ),
    ),
    "community_code": (
        "社区编码",
        "community code",
        (
            "社区编码",
            "社区代码",
            "社区编号",
            "所属社区",
            "所属社区编码",
            "村居编码",
            "居委会编码",
            "community_code",
            "community",
            "community_id",
        ),
    ),
    "street_name": ("街道名称", "street name", ("街道名称", "乡镇街道名称", "street_name")),
    "community_name": (
        "社区名称",
        "community name",
        ("社区名称", "村居名称", "居委会名称", "community_name"),
    ),
    "address": (
        "地址",
        "address",
        (
            "地址",
            "详细地址",
            "事发地址",
            "事发地点",
            "事件地址",
            "发生地点",
            "地点",
            "位置描述",
            "门牌地址",
            "楼栋地址",
            "address",
            "addr",
            "address_string",
        ),
    ),
    # --- staff
    "worker_code": (
        "网格员编号",
        "worker code",
        (
            "网格员编号",
            "网格员编码",
            "网格员工号",
            "上报人编号",
            "巡查人员编号",
            "人员编码",
            "worker_code",
            "worker_id",
            "worker",
            "staff_code",
            "staff_id",
            "reporter_code",
            "reporter_id",
            "user_id",
        ),
    ),
    "phone": (
        "电话",
        "phone",
        ("电话", "手机", "手机号", "手机号码", "联系电话", "联系方式", "phone", "mobile", "tel"),
    ),
    "role": ("角色", "role", ("角色", "岗位", "职务", "人员类别", "role", "position", "duty")),
    "valid_from": (
        "生效日期",
        "valid from",
        ("生效日期", "启用日期", "起始日期", "开始日期", "valid_from", "start_date", "from"),
    ),
    "valid_to": (
        "失效日期",
        "valid to",
        ("失效日期", "停用日期", "终止日期", "截止日期", "valid_to", "end_date", "to"),
    ),
    "active_from": (
        "上岗日期",
        "active from",
        ("上岗日期", "在岗日期", "到岗日期", "入职日期", "任职日期", "active_from", "hired_on"),
    ),
    "active_to": (
        "离岗日期",
        "active to",
        ("离岗日期", "离职日期", "卸任日期", "active_to", "left_on"),
    ),
    # --- buildings, housing
    "building_code": (
        "楼栋编码",
        "building code",
        ("楼栋编码", "楼栋编号", "所属楼栋", "building_code", "building_id", "building"),
    ),
    "households": (
        "户数",
        "households",
        ("户数", "住户数", "总户数", "households", "household_count", "hh"),
    ),
    "floors": (
        "层数",
        "floors",
        ("层数", "楼层数", "总层数", "地上层数", "floors", "storeys", "stories", "floor_count"),
    ),
    "use": (
        "用途",
        "use",
        ("用途", "房屋用途", "建筑用途", "使用性质", "use", "usage", "building_use"),
    ),
    "unit_no": (
        "房号",
        "unit number",
        ("房号", "门牌", "门牌号", "房间号", "室号", "户号", "unit_no", "unit", "room", "room_no"),
    ),
    "occupancy": (
        "居住状态",
        "occupancy",
        ("居住状态", "使用状态", "居住类型", "入住情况", "自住出租", "房屋状态", "occupancy"),
    ),
    "n_registered": (
        "户籍人口",
        "registered residents",
        ("户籍人口", "户籍人数", "户籍", "registered", "n_registered", "registered_residents"),
    ),
    "n_floating": (
        "流动人口",
        "floating population",
        ("流动人口", "流动人数", "外来人口", "floating", "n_floating", "migrants"),
    ),
    "n_elderly_alone": (
        "独居老人",
        "elderly living alone",
        ("独居老人", "空巢独居老人", "独居老人数", "elderly_alone", "n_elderly_alone"),
    ),
    "n_low_income": (
        "低保",
        "low-income (dibao)",
        ("低保", "低保户", "低保人数", "低保人员", "low_income", "n_low_income", "dibao"),
    ),
    "n_disabled": (
        "残疾人",
        "disabled",
        ("残疾", "残疾人", "残疾人数", "disabled", "n_disabled"),
    ),
    "n_veterans": (
        "退役军人",
        "veterans",
        ("退役军人", "退役军人数", "退役军人人数", "veterans", "n_veterans"),
    ),
    "n_party_members": (
        "党员",
        "party members",
        ("党员", "党员数", "党员人数", "party_members", "n_party_members"),
    ),
    "n_released_prisoners": (
        "刑满释放人员",
        "released prisoners",
        ("刑满释放人员", "刑满释放", "刑释人员", "released_prisoners", "n_released_prisoners"),
    ),
    "n_community_correction": (
        "社区矫正人员",
        "under community correction",
        ("社区矫正人员", "社区矫正", "社矫人员", "community_correction"),
    ),
    "n_drug_users": (
        "吸毒人员",
        "drug users",
        ("吸毒人员", "社区戒毒人员", "社区戒毒", "drug_users", "n_drug_users"),
    ),
    "n_severe_mental_illness": (
        "严重精神障碍患者",
        "severe mental illness",
        ("严重精神障碍患者", "严重精神障碍", "精神障碍患者", "severe_mental_illness"),
    ),
    "n_key_youth": ("重点青少年", "key youth", ("重点青少年", "key_youth", "n_key_youth")),
    "updated_on": (
        "更新日期",
        "updated on",
        ("更新日期", "更新时间", "核查日期", "updated_on", "updated_at", "update_date"),
    ),
    # --- places, facilities
    "view_radius_m": (
        "可视半径(米)",
        "view radius (m)",
        ("可视半径", "视域半径", "监控半径", "覆盖半径", "view_radius", "view_radius_m", "radius"),
    ),
    # --- incidents
    "category_code": (
        "事件类型",
        "category",
        (
            "事件类型",
            "事件类别",
            "事件分类",
            "事件小类",
            "类别编码",
            "类别代码",
            "分类编码",
            "类型编码",
            "事件类型编码",
            "小类编码",
            "category",
            "category_code",
            "service_code",
        ),
    ),
    "source": (
        "来源",
        "source",
        ("来源", "事件来源", "信息来源", "上报渠道", "上报方式", "source", "channel"),
    ),
    "severity": (
        "等级",
        "severity",
        ("等级", "严重程度", "事件等级", "紧急程度", "优先级", "severity", "priority"),
    ),
    "title": ("标题", "title", ("标题", "事件标题", "事件名称", "主题", "title", "subject")),
    "description": (
        "描述",
        "description",
        (
            "描述",
            "事件描述",
            "详细描述",
            "问题描述",
            "情况说明",
            "事件详情",
            "description",
            "desc",
            "details",
        ),
    ),
    "occurred_at": (
        "发生时间",
        "occurred at",
        ("发生时间", "事发时间", "发现时间", "occurred_at", "occurred", "occurrence_time"),
    ),
    "reported_at": (
        "上报时间",
        "reported at",
        (
            "上报时间",
            "报告时间",
            "报送时间",
            "上报日期",
            "reported_at",
            "report_time",
            "reported",
            "requested_datetime",
        ),
    ),
    "due_at": (
        "办结时限",
        "due at",
        ("办结时限", "处置时限", "截止时间", "期限", "due_at", "deadline", "expected_datetime"),
    ),
    "status": (
        "状态",
        "status",
        ("状态", "当前状态", "处置状态", "办理状态", "事件状态", "status"),
    ),
    # --- transitions
    "incident_code": (
        "事件编号",
        "incident code",
        (
            "事件编号",
            "事件编码",
            "案件编号",
            "工单编号",
            "incident_code",
            "incident_id",
            "incident",
        ),
    ),
    "at": (
        "时间",
        "at",
        ("时间", "处理时间", "操作时间", "流转时间", "办理时间", "at", "changed_at", "action_time"),
    ),
    "to_status": (
        "目标状态",
        "new status",
        ("目标状态", "新状态", "流转后状态", "变更后状态", "to_status", "new_status", "status_to"),
    ),
    "tier": ("层级", "tier", ("层级", "处置层级", "办理层级", "流转层级", "tier")),
    "actor": (
        "处理人",
        "actor",
        ("处理人", "操作人", "经办人", "办理人", "处置人", "actor", "operator", "handler"),
    ),
    "note": (
        "备注",
        "note",
        ("备注", "处理意见", "办理意见", "意见", "note", "notes", "remark", "remarks", "comment"),
    ),
    "new_due_at": (
        "延期至",
        "new due time",
        ("延期至", "新期限", "延期截止时间", "new_due_at", "extended_to"),
    ),
    # --- patrols, logs
    "fixed_at": (
        "定位时间",
        "fix time",
        (
            "定位时间",
            "采集时间",
            "gps时间",
            "time",
            "timestamp",
            "fixed_at",
            "fix_time",
            "gps_time",
            "datetime",
        ),
    ),
    "accuracy_m": (
        "定位精度(米)",
        "accuracy (m)",
        ("精度", "定位精度", "水平精度", "accuracy", "accuracy_m", "horizontal_accuracy"),
    ),
    "started_at": (
        "开始时间",
        "started at",
        ("开始时间", "巡查开始时间", "started_at", "start_time", "start"),
    ),
    "ended_at": (
        "结束时间",
        "ended at",
        ("结束时间", "巡查结束时间", "ended_at", "end_time", "end"),
    ),
    "n_fixes": ("定位点数", "number of fixes", ("定位点数", "点数", "n_fixes", "n_points")),
    "length_m": ("里程(米)", "length (m)", ("里程", "巡查里程", "长度", "length_m", "length")),
    "log_date": (
        "日期",
        "log date",
        ("日期", "日志日期", "记录日期", "工作日期", "log_date", "date"),
    ),
    "body": (
        "内容",
        "body",
        ("内容", "日志内容", "正文", "记录内容", "工作内容", "body", "content", "text"),
    ),
}


def normalise_header(header: str) -> str:
    """A header reduced to what matters for matching.

    NFKC (full-width ``ＬＮＧ`` and ``（`` become ``LNG`` and ``(``), case-folded, with
    whitespace, punctuation and symbols removed: ``" Longitude (°) "`` →
    ``"longitude"``, ``"网格_编码"`` → ``"网格编码"``. Letters and digits of any script stay.
    """
    s = unicodedata.normalize("NFKC", str(header)).casefold()
    return "".join(c for c in s if unicodedata.category(c)[0] in "LN")


_BRACKETS: Final = re.compile(r"[(\[{（【［｛<《][^)\]}）】］｝>》]*[)\]}）】］｝>》]")


def _without_brackets(header: str) -> str:
    """The normalised header with bracketed parts (units, notes) removed."""
    return normalise_header(_BRACKETS.sub("", unicodedata.normalize("NFKC", str(header))))


#: Canonical field → the headers recognised for it (its own name first). Matching is
#: through :func:`normalise_header`, so case, spaces and punctuation do not matter.
HEADER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(dict.fromkeys((name, *aliases))) for name, (_, _, aliases) in _FIELDS.items()
}

#: Canonical field → (中文名, English name), for messages and ``--help``.
FIELD_LABELS: Final[dict[str, tuple[str, str]]] = {
    name: (zh, en) for name, (zh, en, _) in _FIELDS.items()
}

_NORMALISED: Final[dict[str, frozenset[str]]] = {
    name: frozenset(normalise_header(a) for a in aliases)
    for name, aliases in HEADER_ALIASES.items()
}


#: Loader kind → canonical field → headers that mean that field *in files of this kind*.
#: They are tried before :data:`HEADER_ALIASES`: in a grids file ``网格编码`` is the grid's
#: own ``code``, in a buildings file it is the ``grid_code`` the building lies in; in a
#: communities file ``街道编码`` is the ``parent_code``; in a transitions file ``状态`` is the
#: ``to_status``.
KIND_ALIASES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "streets": {
        "code": ("街道编码", "街道代码", "街道编号", "乡镇街道编码", "区划代码", "统计用区划代码"),
        "name": ("街道名称", "乡镇街道名称", "街道", "乡镇街道"),
        "parent_code": ("区编码", "区县编码", "所属区县", "所属区县编码", "district_code"),
    },
    "communities": {
        "code": ("社区编码", "社区代码", "社区编号", "村居编码", "居委会编码", "区划代码"),
        "name": ("社区名称", "村居名称", "居委会名称", "社区", "村居"),
        "parent_code": ("街道编码", "街道代码", "所属街道", "所属街道编码", "street_code"),
    },
    "grids": {
        "code": ("网格编码", "网格代码", "网格编号", "grid_code", "grid_id"),
        "name": ("网格名称", "网格名", "grid_name"),
        "kind": ("网格类型", "网格类别", "网格性质", "grid_kind"),
        "worker_code": ("网格员", "网格员编号", "责任网格员"),
    },
    "workers": {
        "code": ("人员编号", "人员编码", "网格员编号", "网格员编码", "工号", "staff_code"),
        "name": ("姓名", "网格员姓名", "人员姓名"),
    },
    "buildings": {
        "code": ("楼栋编码", "楼栋编号", "建筑编码", "建筑物编码", "building_code"),
        "use": ("楼栋用途", "建筑用途", "建筑性质"),
    },
    "housing": {
        "use": ("房屋用途", "房屋性质"),
    },
    "places": {
        "code": ("场所编码", "场所编号", "单位编码", "单位编号", "place_code"),
        "name": ("场所名称", "单位名称", "place_name"),
        "kind": ("场所类型", "场所类别", "单位类型", "单位类别", "place_kind"),
    },
    "facilities": {
        "code": ("设施编码", "设施编号", "设备编号", "点位编号", "摄像头编号", "facility_code"),
        "name": ("设施名称", "点位名称", "设备名称"),
        "kind": ("设施类型", "设施类别", "设备类型", "facility_kind"),
    },
    "incidents": {
        "code": (
            "事件编号",
            "事件编码",
            "案件编号",
            "工单编号",
            "工单号",
            "service_request_id",
            "incident_code",
            "incident_id",
        ),
        "worker_code": ("上报人编号", "上报人工号", "上报网格员编号"),
    },
    "transitions": {
        "to_status": ("状态", "处置状态", "办理状态", "流转状态", "status"),
    },
    "patrols": {
        "worker_code": ("巡查人编号", "巡查人员编号", "巡查人"),
    },
    "worklogs": {
        "kind": ("日志类型", "日志类别", "log_kind"),
    },
}


def _table(aliases: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    return {f: frozenset(normalise_header(a) for a in names) for f, names in aliases.items()}


_KIND_NORMALISED: Final[dict[str, dict[str, frozenset[str]]]] = {
    kind: _table(table) for kind, table in KIND_ALIASES.items()
}


def _stages(kind: str | None) -> list[tuple[dict[str, frozenset[str]], bool]]:
    """Alias tables in the order they are tried, each with: match loosely (brackets off)?"""
    if kind is not None and kind not in KIND_ALIASES:
        raise ValueError(f"unknown loader kind {kind!r}; known: {', '.join(KIND_ALIASES)}")
    stages: list[tuple[dict[str, frozenset[str]], bool]] = []
    if kind is not None:
        stages += [(_KIND_NORMALISED[kind], False), (_KIND_NORMALISED[kind], True)]
    return [*stages, (_NORMALISED, False), (_NORMALISED, True)]


def _hits(
    header: str, fields: Iterable[str], table: Mapping[str, frozenset[str]], loose: bool
) -> list[str]:
    """The ``fields`` whose aliases in ``table`` include ``header`` (a field unknown to
    the generic table is matched by its own name)."""
    key = _without_brackets(header) if loose else normalise_header(header)
    if not key:
        return []
    hits = []
    for f in fields:
        default = frozenset({normalise_header(f)}) if table is _NORMALISED else frozenset()
        if key in table.get(f, default):
            hits.append(f)
    return hits


def match_field(
    header: str, fields: Iterable[str] | None = None, *, kind: str | None = None
) -> list[str]:
    """The canonical fields (among ``fields``, default all) that ``header`` is a name of.

    Tried in order, the first that gives any answer wins: the aliases of ``kind``
    (:data:`KIND_ALIASES`), then :data:`HEADER_ALIASES`; each first exactly (normalised)
    and then with a bracketed part removed (``精度(米)`` → ``accuracy_m``).
    """
    names = list(fields) if fields is not None else list(HEADER_ALIASES)
    for table, loose in _stages(kind):
        hits = _hits(header, names, table, loose)
        if hits:
            return hits
    return []


# --- errors ----------------------------------------------------------------------------


class ColumnError(InputError):
    """The columns of a file do not give what a loader needs."""


class MissingColumnError(ColumnError):
    """Required columns are absent. ``missing`` are canonical names, ``found`` the headers."""

    def __init__(
        self, message: str, *, file: str | None = None, missing: list[str], found: list[str]
    ) -> None:
        super().__init__(message, file=file)
        self.missing = missing
        self.found = found


class AmbiguousColumnError(ColumnError):
    """Several headers could be one field, or one header several fields."""


class MappingError(InputError):
    """A column-mapping file is malformed, or names fields or headers that do not exist."""


def _zh_en(field: str) -> tuple[str, str]:
    return FIELD_LABELS.get(field, (field, field))


def _show(headers: Sequence[str]) -> str:
    return ", ".join(f"“{h}”" for h in headers) if headers else "（无 / none）"


# --- resolution ----------------------------------------------------------------------


def resolve_columns(
    headers: Sequence[str],
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    mapping: Mapping[str, str] | None = None,
    source: str = "file name",
    kind: str | None = None,
    values: Mapping[str, Sequence[object]] | None = None,
) -> dict[str, str]:
    """Map the headers of a file to the canonical fields a loader needs.

    Each requested field is looked up first in ``mapping`` (canonical → header, from
    :func:`load_mapping` or ``--mapping``), then among the aliases of ``kind``
    (:data:`KIND_ALIASES`), then among :data:`HEADER_ALIASES` — exact (normalised) before
    bracket-stripped, so ``经度`` beats ``经度（备用）``. A header, once taken, is not
    matched to any other field.

    Parameters
    ----------
    headers
        The file's headers, in file order.
    required
        Canonical fields that must be present.
    optional
        Canonical fields used when present.
    mapping
        Explicit canonical → header choices; they win over aliases.
    source
        The file's name, for messages.
    kind
        The loader kind (``"grids"``, ``"incidents"`` …, a key of :data:`KIND_ALIASES`):
        its aliases are tried first.
    values
        The columns' values by header (the file's table): headers that could both be one
        field are one column when they hold the same values (an export carrying ``经度``
        and ``lng`` alike), the first taken. Without it, such headers are ambiguous.

    Returns
    -------
    dict[str, str]
        Canonical field → the file's header, for every required and each present optional
        field, in the order requested.

    Raises
    ------
    MissingColumnError
        A required field has no column; the message names it in Chinese and English, shows
        a few recognised names for it, and lists the headers found.
    AmbiguousColumnError
        Two headers match one field (and hold different values, when ``values`` are
        given), or one header matches two requested fields.
    MappingError
        The mapping names a field this file does not take, or a header it does not have.
    """
    required = list(dict.fromkeys(required))
    optional = [f for f in dict.fromkeys(optional) if f not in required]
    wanted = required + optional
    headers = [str(h) for h in headers]
    result: dict[str, str] = {}

    taken: set[str] = set()
    for field_name, header in (mapping or {}).items():
        if field_name not in wanted:
            raise MappingError(
                _mapping_unknown_msg(source, [field_name], wanted, in_file=True),
                file=source,
            )
        actual = _find_header(header, headers)
        if actual is None:
            zh, en = _zh_en(field_name)
            raise MappingError(
                f"{source}：映射文件把“{zh}”({field_name}) 对应到列“{header}”，但文件中没有这一列。"
                f"文件中的列：{_show(headers)} / {source}: the mapping maps {field_name} ({en}) "
                f"to the column {header!r}, which the file does not have. Headers found: "
                f"{_show(headers)}",
                file=source,
            )
        result[field_name] = actual
        taken.add(actual)

    pool = [h for h in headers if h not in taken]
    pending = [f for f in wanted if f not in result]
    for table, loose in _stages(kind):
        claims: dict[str, list[str]] = {f: [] for f in pending}
        for h in pool:
            fields = _hits(h, pending, table, loose)
            if len(fields) > 1:
                names = "、".join(f"{_zh_en(f)[0]}({f})" for f in fields)
                raise AmbiguousColumnError(
                    f"{source}：列“{h}”可以是 {names} 中的任何一个；请用映射文件 (--mapping) 指定"
                    f" / {source}: the column {h!r} could be any of {', '.join(fields)}; say "
                    "which with a mapping file (--mapping)",
                    file=source,
                )
            for f in fields:
                claims[f].append(h)
        for f, hs in claims.items():
            if len(hs) > 1 and values is not None and _same_values(values, hs):
                for h in hs[1:]:
                    pool.remove(h)
                hs = hs[:1]
            if len(hs) > 1:
                zh, en = _zh_en(f)
                raise AmbiguousColumnError(
                    f"{source}：有多个列都可能是“{zh}”({f})：{_show(hs)}；请删去多余的列，或用映射"
                    f"文件 (--mapping) 指定 / {source}: several columns could be {f} ({en}): "
                    f"{_show(hs)}; remove the extra ones, or choose one with a mapping file "
                    "(--mapping)",
                    file=source,
                )
            if hs:
                result[f] = hs[0]
                pool.remove(hs[0])
                pending.remove(f)

    missing = [f for f in required if f not in result]
    if missing:
        raise MissingColumnError(
            _missing_msg(source, missing, headers, kind),
            file=source,
            missing=missing,
            found=headers,
        )
    return {f: result[f] for f in wanted if f in result}


def _same_values(values: Mapping[str, Sequence[object]], headers: Sequence[str]) -> bool:
    """Whether the columns under ``headers`` hold the same values, row by row."""
    first = list(values[headers[0]])
    return all(list(values[h]) == first for h in headers[1:])


def _find_header(header: str, headers: Sequence[str]) -> str | None:
    """The file's header a mapping value refers to: exact, else unique normalised match."""
    if header in headers:
        return header
    key = normalise_header(header)
    hits = [h for h in headers if normalise_header(h) == key]
    return hits[0] if len(hits) == 1 else None


def _missing_msg(source: str, missing: list[str], headers: Sequence[str], kind: str | None) -> str:
    zh_names = "、".join(f"{_zh_en(f)[0]}（{f}）" for f in missing)
    en_names = ", ".join(f"{f} ({_zh_en(f)[1]})" for f in missing)

    def names(f: str) -> list[str]:
        own = KIND_ALIASES.get(kind or "", {}).get(f, ())
        return list(dict.fromkeys((*own, *HEADER_ALIASES.get(f, (f,)))))[:6]

    hints = "; ".join(f"{f}: {', '.join(names(f))}" for f in missing)
    return (
        f"{source} 缺少必需的列：{zh_names}。文件中的列：{_show(headers)}。"
        "请改表头，或用映射文件 (--mapping) 指明对应的列 / "
        f"{source} lacks the required column(s) {en_names}. Headers found: {_show(headers)}. "
        f"Recognised names: {hints}. Rename the header, or map it with a mapping file "
        "(--mapping)"
    )


def _mapping_unknown_msg(
    source: str, names: list[str], known: Iterable[str], *, in_file: bool = False
) -> str:
    known = list(known)
    tips = []
    by_alias = {normalise_header(a): f for f in known for a in HEADER_ALIASES.get(f, (f,))}
    for n in names:
        close = list(
            dict.fromkeys(
                by_alias[a] for a in difflib.get_close_matches(normalise_header(n), by_alias, n=3)
            )
        )
        back = match_field(n, known)  # the user wrote header -> canonical?
        if back:
            tips.append(f"“{n}” → {back[0]}?")
        elif close:
            tips.append(f"{n} → {' / '.join(close)}?")
    tip = f" ({'; '.join(tips)})" if tips else ""
    where_zh = "这类数据不使用" if in_file else "不是已知的字段名"
    where_en = "are not taken by this kind of data" if in_file else "are no known field names"
    return (
        f"{source}：映射文件中的 {', '.join(names)} {where_zh}{tip}；映射应写成“字段名 = 表头”，"
        f"字段名可选：{', '.join(known)} / {source}: in the mapping, {', '.join(names)} "
        f"{where_en}{tip}; a mapping is field name = header, with field names from: "
        f"{', '.join(known)}"
    )


def load_mapping(path: str | Path) -> dict[str, str]:
    """Read a column-mapping file: canonical field → the header a file uses for it.

    JSON (``{"lon": "东经度", "lat": "北纬度"}``) or TOML (``lon = "东经度"``), chosen by
    the extension (``.json`` / ``.toml``; otherwise JSON is tried, then TOML). The pairs may
    also sit under a ``columns`` key / ``[columns]`` table.

    Raises
    ------
    MappingError
        The file cannot be parsed, is not a flat table of strings, or names unknown fields
        (the message suggests the nearest field names and notices a reversed mapping).
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    text = path.read_text("utf-8-sig")
    doc: object
    errors = []
    parsers = {".json": ("json",), ".toml": ("toml",)}.get(path.suffix.lower(), ("json", "toml"))
    doc = None
    for kind in parsers:
        try:
            doc = json.loads(text) if kind == "json" else tomllib.loads(text)
            break
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            errors.append(f"{kind.upper()}: {e}")
    else:
        raise MappingError(
            f"映射文件 {path.name} 无法解析（{'; '.join(errors)}）/ cannot parse the mapping "
            f"file {path.name} ({'; '.join(errors)})",
            file=path.name,
        )
    if isinstance(doc, dict) and isinstance(doc.get("columns"), dict):
        doc = doc["columns"]
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in doc.items()
    ):
        raise MappingError(
            f"映射文件 {path.name} 应是“字段名 → 表头”的一层键值表，值为非空文本 / the mapping file"
            f" {path.name} must be one flat table of field name → header, with non-empty text "
            "values",
            file=path.name,
        )
    unknown = [k for k in doc if k not in HEADER_ALIASES]
    if unknown:
        raise MappingError(_mapping_unknown_msg(path.name, unknown, HEADER_ALIASES), file=path.name)
    return {k: v.strip() for k, v in doc.items()}
