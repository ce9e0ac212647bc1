"""Tests that drive real POP3 client programs (curl, fetchmail, getmail6) and poplib."""
