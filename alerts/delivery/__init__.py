"""Delivery: claims outbox rows, renders, sends through Telegram and Apprise, records attempts."""
