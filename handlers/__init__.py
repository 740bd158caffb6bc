"""Slack and mail adapters: each module exposes `register(app)` (and `register_events(router)`
for stored Slack events); bot.app.register_listeners wires them all with plain imports."""
