"""What a user touches: the command line, the report and terminal output, the
pytest plugin, the driver loop and its static checks, the test suites.
Only this package prints or exits.
"""
