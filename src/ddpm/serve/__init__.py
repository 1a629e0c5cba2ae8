"""The web page of ``ddpm serve``."""
