"""Worker phone numbers outside the dashboard (issue 7): ``store.access.mask_phone`` hides
the middle four digits of any mobile number and every digit of anything else, and
``phone_view`` gives a district-role user every number, anyone else only their own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from store import access
from store.access import PhoneView, mask_phone, phone_view
from tests import factories

mobile = st.from_regex(r"\A1[3-9][0-9]{9}\Z")


@given(mobile)
def test_a_mobile_number_keeps_three_and_four_digits(phone: str) -> None:
    shown = mask_phone(phone)
    assert shown == f"{phone[:3]}****{phone[-4:]}"
    assert mask_phone(shown) == shown  # masking what the database masked changes nothing


@given(st.text(max_size=30).filter(lambda s: not s.strip().isdigit() or len(s.strip()) != 11))
def test_anything_else_is_hidden_whole(value: str) -> None:
    shown = mask_phone(value)
    if shown != "****":  # only an already masked number passes as it is
        assert shown == value.strip() and shown[3:7] == "****"


def test_missing_numbers_stay_missing() -> None:
    for view in (PhoneView(), PhoneView(own="W1"), PhoneView(full=True)):
        assert view.show("W1", None) is None
        assert view.show("W1", float("nan")) != view.show("W1", float("nan"))  # NaN kept


@pytest.mark.parametrize(
    ("role", "scope", "staff", "w1", "w2"),
    [
        ("district", factories.DISTRICT, None, "13900000001", "13800000002"),
        ("street", factories.STREET, None, "139****0001", "138****0002"),
        ("grid", factories.GRID, "W1", "13900000001", "138****0002"),
        ("community", factories.COMMUNITY, "W2", "139****0001", "13800000002"),
    ],
)
def test_district_sees_all_others_their_own(
    conn: Connection, role: str, scope: str, staff: str | None, w1: str, w2: str
) -> None:
    factories.area(conn)
    conn.execute(
        text(
            "INSERT INTO staff (code, name, role, phone, street_code, active_from) "
            "VALUES ('W2', '李测试', 'grid_worker', '13800000002', :s, '2025-01-01')"
        ),
        {"s": factories.STREET},
    )
    access.create_user(
        conn, "phone-u", "用户", role, scope, "Secret123456", staff_code=staff, actor="t"
    )
    view = phone_view(conn, "phone-u")
    assert (view.show("W1", "13900000001"), view.show("W2", "13800000002")) == (w1, w2)


def test_an_inactive_or_unknown_user_sees_every_number_masked(conn: Connection) -> None:
    factories.area(conn)
    access.create_user(
        conn, "qu-off", "区级", "district", factories.DISTRICT, "Secret123456", actor="t"
    )
    assert phone_view(conn, "qu-off").full
    access.set_active(conn, "qu-off", False, actor="t")
    for login in ("qu-off", "nobody", None):
        assert phone_view(conn, login) == PhoneView()
