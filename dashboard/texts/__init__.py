"""User-facing text, one module per page (Chinese, English); merged by dashboard.i18n."""
