"""Use cases shared by the REST API and the Telegram bot: one place for every query and rule."""
