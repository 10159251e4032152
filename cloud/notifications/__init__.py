"""Alarms that reach people: channels, duty rosters, escalation and a
durable outbox.

- adapters.py   the one interface every channel kind speaks
- webhook.py, robots.py, email.py, sms.py   the channel kinds
- roster.py     who is on duty at a moment (weekly pattern and overrides)
- messages.py   an alarm event as a message in the recipient's language
- escalation.py which channels an alarm event reaches, step by step
- outbox.py     notifications as rows: queued with the alarm, claimed by one
                sender at a time, retried with backoff, dead-lettered
- sender.py     the loop that delivers due notifications

Nothing lives only in one process: a notification is a row committed in
the same transaction as the alarm change that caused it, so it survives a
restart, and several workers share the work through the database.
"""
