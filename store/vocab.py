"""Controlled vocabularies of the schema, with Chinese and English labels.

The database stores the English codes (CHECK constraints in :mod:`store.models` use the
tuples below); pages and reports show :func:`label`. Chinese comes first.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]

# code -> (中文, English)
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "admin_level": {
        "district": ("区", "District"),
        "street": ("街道", "Street"),
        "community": ("社区", "Community"),
    },
    "grid_kind": {
        "urban": ("城市网格", "Urban grid"),
        "village": ("农村网格", "Village grid"),
        "special": ("专属网格", "Special grid"),
    },
    "staff_role": {
        "grid_worker": ("网格员", "Grid worker"),
        "info_officer": ("网格信息员", "Grid information officer"),
        "supervisor": ("网格督导员", "Grid supervisor"),
        "police": ("网格警员", "Grid police officer"),
        "firefighter": ("网格消防员", "Grid fire-safety officer"),
        "monitor": ("网格监督员", "Grid monitor"),
        "volunteer": ("网格公益员", "Volunteer"),
        "building_head": ("楼栋长", "Building head"),
    },
    "building_use": {
        "residential": ("住宅", "Residential"),
        "commercial": ("商业", "Commercial"),
        "mixed": ("商住混合", "Mixed use"),
        "office": ("办公", "Office"),
        "industrial": ("工业仓储", "Industrial / storage"),
        "public": ("公共服务", "Public service"),
        "other": ("其他", "Other"),
    },
    "housing_use": {
        "residential": ("居住", "Residential"),
        "commercial": ("经营", "Business"),
        "office": ("办公", "Office"),
        "other": ("其他", "Other"),
    },
    "occupancy": {
        "owner": ("自住", "Owner-occupied"),
        "rented": ("出租", "Rented"),
        "lent": ("借住", "Lent"),
        "vacant": ("空置", "Vacant"),
    },
    "place_kind": {
        "market": ("农贸市场", "Market"),
        "school": ("学校", "School"),
        "kindergarten": ("幼儿园", "Kindergarten"),
        "hospital": ("医院", "Hospital"),
        "clinic": ("诊所", "Clinic"),
        "entertainment": ("娱乐场所", "Entertainment venue"),
        "hotel": ("旅馆", "Hotel"),
        "fire_risk_enterprise": ("消防重点单位", "Fire-risk enterprise"),
        "hazardous_chemicals": ("危化品单位", "Hazardous chemicals site"),
        "petrol_station": ("加油站", "Petrol station"),
        "elderly_care": ("养老机构", "Elderly care home"),
        "construction_site": ("建筑工地", "Construction site"),
        "religious": ("宗教场所", "Religious site"),
    },
    "facility_kind": {
        "camera_tianwang": ("天网摄像头", "Camera (Skynet)"),
        "camera_xueliang": ("雪亮工程摄像头", "Camera (Sharp Eyes)"),
        "hydrant": ("消防栓", "Fire hydrant"),
        "emergency_supply": ("应急物资点", "Emergency supply point"),
        "aed": ("AED", "Defibrillator (AED)"),
    },
    "road_kind": {
        "main": ("主干道", "Main road"),
        "secondary": ("次干道", "Secondary road"),
        "lane": ("支路 / 巷道", "Lane"),
    },
    "incident_source": {
        "patrol": ("网格巡查", "Patrol"),
        "app": ("群众APP", "Resident app"),
        "hotline": ("12345热线", "12345 hotline"),
        "video": ("视频发现", "Video"),
        "assigned": ("上级交办", "Assigned by higher level"),
    },
    "severity": {
        "1": ("一般", "General"),
        "2": ("较大", "Significant"),
        "3": ("重大", "Major"),
        "4": ("特别重大", "Very major"),
    },
    "incident_status": {
        "reported": ("已上报", "Reported"),
        "registered": ("已立案", "Registered"),
        "dispatched": ("已派遣", "Dispatched"),
        "handling": ("处置中", "Being handled"),
        "feedback": ("待复核", "Awaiting review"),
        "verified": ("已核查", "Verified"),
        "closed": ("已结案", "Closed"),
        "returned": ("已退回", "Returned"),
        "reworked": ("返工", "Rework"),
        "extended": ("已延期", "Extended"),
        "escalated": ("已上报上级", "Escalated"),
        "reopened": ("已重启", "Reopened"),
    },
    "tier": {
        "grid": ("网格", "Grid"),
        "community": ("社区", "Community"),
        "street": ("街道", "Street"),
        "department": ("职能部门", "Department"),
    },
    "log_kind": {
        "public_sentiment": ("民情日志", "Public-sentiment log"),
        "work": ("工作日志", "Work log"),
    },
    # who may log in (store/access.py); scope is an admin-unit subtree, see USER_ROLE_SCOPE
    "user_role": {
        "district": ("区级", "District"),
        "street": ("街道领导", "Street leader"),
        "community": ("社区", "Community"),
        "grid": ("网格员", "Grid worker"),
        "sysadmin": ("系统管理员", "System administrator"),
        "auditor": ("审计员", "Auditor"),
    },
    "audit_action": {
        "login": ("登录", "Login"),
        "login_failed": ("登录失败", "Failed login"),
        "logout": ("退出", "Logout"),
        "session_expired": ("会话超时", "Session expired"),
        "page_view": ("查看页面", "Page view"),
        "export": ("导出", "Export"),
        "briefing": ("简报", "Briefing"),
        "user_add": ("新增用户", "User added"),
        "user_change": ("修改用户", "User changed"),
        "password_set": ("设置密码", "Password set"),
        "lock": ("锁定账号", "Account locked"),
        "unlock": ("解锁账号", "Account unlocked"),
        "purge": ("清理审计日志", "Audit log purged"),
    },
}

ADMIN_LEVELS = tuple(LABELS["admin_level"])
GRID_KINDS = tuple(LABELS["grid_kind"])
STAFF_ROLES = tuple(LABELS["staff_role"])
BUILDING_USES = tuple(LABELS["building_use"])
HOUSING_USES = tuple(LABELS["housing_use"])
OCCUPANCY = tuple(LABELS["occupancy"])
PLACE_KINDS = tuple(LABELS["place_kind"])
FACILITY_KINDS = tuple(LABELS["facility_kind"])
ROAD_KINDS = tuple(LABELS["road_kind"])
INCIDENT_SOURCES = tuple(LABELS["incident_source"])
INCIDENT_STATUSES = tuple(LABELS["incident_status"])
TIERS = tuple(LABELS["tier"])  # ordered low to high
LOG_KINDS = tuple(LABELS["log_kind"])
USER_ROLES = tuple(LABELS["user_role"])
AUDIT_ACTIONS = tuple(LABELS["audit_action"])

#: Length of the code prefix a data role's scope is (gridone.scope): district 6 digits,
#: street 9, community 12, grid 15. sysadmin and auditor have no scope and read no data.
USER_ROLE_SCOPE: dict[str, int] = {"district": 6, "street": 9, "community": 12, "grid": 15}

#: Roles that may see the sensitive special-group counts (特殊人群), as counts per grid.
SPECIAL_GROUP_ROLES = ("district", "street")

#: Severity from which the 4-hour reporting rule applies (重大).
MAJOR_SEVERITY = 3

#: Statuses that count as open (待办) and awaiting review (待复核) on the dashboard.
OPEN_STATUSES = tuple(s for s in INCIDENT_STATUSES if s != "closed")

#: Allowed transitions of the incident workflow: from status (None = first entry) -> to.
#: The database enforces this table (workflow_rule, synced from here) on every insert.
WORKFLOW: dict[str | None, tuple[str, ...]] = {
    None: ("reported",),
    "reported": ("registered", "handling", "returned"),
    "registered": ("dispatched", "handling", "escalated", "returned"),
    "dispatched": ("handling", "escalated", "returned"),
    "handling": ("feedback", "extended", "escalated", "returned"),
    "extended": ("handling", "feedback", "escalated"),
    "escalated": ("registered", "dispatched", "handling"),
    "returned": ("registered", "dispatched", "closed"),
    "feedback": ("verified", "reworked"),
    "reworked": ("handling", "feedback"),
    "verified": ("closed", "reworked"),
    "closed": ("reopened",),
    "reopened": ("registered", "dispatched", "handling", "escalated"),
}


def label(vocabulary: str, code: object, lang: Lang = "zh") -> str:
    """The label of ``code`` in ``vocabulary`` (e.g. ``label("tier", "grid") == "网格"``).

    Unknown codes are returned as they are, so a page never fails on a new value."""
    pair = LABELS[vocabulary].get(str(code))
    if pair is None:
        return str(code)
    return pair[0] if lang == "zh" else pair[1]
