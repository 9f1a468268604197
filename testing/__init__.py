"""Support code for the tests of every app: fake servers, live-server runners, SSE parsing.

Nothing here is a test and nothing here is imported by the application. The fixtures that use it
are in the root ``conftest.py``.
"""
