"""The ``ddpm`` command line."""
