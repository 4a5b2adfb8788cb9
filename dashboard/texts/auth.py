"""Text of the login screen, the sidebar's user box and the auditor's page (``au_``)."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "au_login_title": ("登录 Grid One-Map 网格一张图", "Log in to Grid One-Map"),
    "au_login_intro": (
        "本系统含敏感个人信息，仅限授权人员使用；所有登录和查询均记入审计日志。",
        "This system holds sensitive personal information: authorised staff only. Every login "
        "and every view is written to the audit log.",
    ),
    "au_login": ("登录名", "Login name"),
    "au_password": ("密码", "Password"),
    "au_totp": ("动态口令（6位数字）", "One-time code (6 digits)"),
    "au_code_step": (
        "密码正确。账号 {login} 已开启第二因素：请输入手机验证器中的6位动态口令。",
        "Password accepted. {login} has a second factor: enter the 6-digit code of your "
        "authenticator app.",
    ),
    "au_code_missing": ("请输入6位动态口令。", "Enter the 6-digit code."),
    "au_code_submit": ("验证并登录", "Verify and log in"),
    "au_code_back": ("返回（重新输入账号）", "Back (another login)"),
    "au_submit": ("登录", "Log in"),
    "au_missing": ("请输入登录名和密码。", "Enter your login name and password."),
    "au_no_account": (
        "没有账号或忘记密码？请联系系统管理员（python -m store users …）。",
        "No account, or forgot the password? Ask the system administrator "
        "(python -m store users …).",
    ),
    "au_user": ("当前用户", "Logged in"),
    "au_scope": ("辖区", "Jurisdiction"),
    "au_scope_none": ("不读取业务数据", "reads no data"),
    "au_logout": ("退出登录", "Log out"),
    "au_logged_out": ("已退出登录。", "You have logged out."),
    "au_not_yours": (
        "{what} 不在您的辖区内，已显示您辖区的内容。",
        "{what} is not in your jurisdiction: your own is shown instead.",
    ),
    "au_sysadmin": (
        "系统管理员只管理用户，不查看业务数据。请在服务器上使用 `python -m store users …` "
        "新增用户、重置密码、锁定或停用账号。",
        "The system administrator manages users and sees no data. Use `python -m store users …` "
        "on the server to add users, reset passwords, lock or disable accounts.",
    ),
    "page_sysadmin": ("用户管理", "Users"),
    "page_audit": ("审计日志", "Audit log"),
    "au_title": ("审计日志查询", "Audit log search"),
    "au_period": ("时间段", "Period"),
    "au_who": ("用户（登录名）", "User (login name)"),
    "au_action": ("操作", "Action"),
    "au_any": ("全部", "any"),
    "au_text": ("包含文字（详情中）", "Detail contains"),
    "au_found": ("共 {n} 条（最多显示 {limit} 条）", "{n} rows (at most {limit} shown)"),
    "au_none": (
        "该条件下没有审计记录；请放宽时间段或清空其他条件。",
        "No audit rows for these conditions: widen the period or clear the other filters.",
    ),
    "au_csv": ("下载 CSV（下载本身记入审计）", "Download CSV (the download is audited)"),
    "au_col_at": ("时间", "Time"),
    "au_col_login": ("登录名", "Login"),
    "au_col_role": ("角色", "Role"),
    "au_col_scope": ("辖区", "Scope"),
    "au_col_action": ("操作", "Action"),
    "au_col_ok": ("成功", "OK"),
    "au_col_detail": ("详情", "Detail"),
    "au_col_client": ("客户端", "Client"),
    "au_bad_period": (
        "时间段无效（开始晚于结束），已改为最近 7 天。",
        "The period is not valid (start after end): the last 7 days are shown.",
    ),
    "au_special_groups": (
        "特殊人群（按网格汇总，少于5显示<5）",
        "Special groups (per grid, <5 when few)",
    ),
    "au_sg_n_released_prisoners": ("刑满释放人员", "Released prisoners"),
    "au_sg_n_community_correction": ("社区矫正对象", "Under community correction"),
    "au_sg_n_drug_users": ("吸毒人员", "Drug users"),
    "au_sg_n_severe_mental_illness": ("严重精神障碍患者", "Severe mental illness"),
    "au_sg_n_key_youth": ("重点青少年", "Key youth"),
    "au_sg_note": (
        "敏感信息：仅区级和街道领导可见；少于5人显示为“<5”；不按房屋或个人显示。",
        "Sensitive: district and street leaders only; fewer than 5 shown as “<5”; never per "
        "dwelling or person.",
    ),
}
