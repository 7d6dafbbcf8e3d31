"""The vocabulary: events, accounts, phone numbers, time zones, clocks and attempts."""
