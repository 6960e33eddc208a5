"""Helpers shared by the test suites: in-memory fakes of the ports, running parley, waits."""
