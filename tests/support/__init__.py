"""Helpers shared by livechat's tests: real MariaDB and Redis servers."""
