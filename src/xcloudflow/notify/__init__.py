"""Notifications: signed webhooks (generic JSON, Slack, Feishu/Lark) on run events, sent from an outbox."""
