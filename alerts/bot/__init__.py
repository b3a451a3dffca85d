"""The Telegram bot: traders manage their alerts where they already are. One router per
feature (`routers/`), all on the same services as the REST API."""
