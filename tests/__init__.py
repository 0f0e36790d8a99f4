"""Tests for livechat."""
